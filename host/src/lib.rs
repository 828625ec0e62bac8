//! tdquant-host: the workstation side of tdquant.
//!
//! Modules follow the data path: [`data_root`] finds the data, [`weights`]
//! loads checkpoints, [`model`] runs SwinIR-light in full precision,
//! [`bicubic`] makes LR images exactly as MATLAB does, [`eval`] scores outputs
//! exactly as BasicSR does, [`export`] turns weights and bounds into the
//! integer-only `.tdq` model and [`intmodel`] runs it (through
//! `tdquant_core::int`).
#![deny(missing_docs)]

pub mod app;
pub mod bicubic;
pub mod calib;
pub mod compute_device;
pub mod cpu_backend;
pub mod cpu_features;
pub mod data_root;
pub mod eval;
pub mod export;
pub mod image_io;
pub mod input_file;
pub mod intmodel;
pub mod model;
pub mod output;
pub mod parity;
pub mod progress;
pub mod tiling;
pub mod upscale;
pub mod weights;
