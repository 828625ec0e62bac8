//! Test-only fixtures of the workspace tests.

pub mod models;
