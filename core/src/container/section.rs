//! One validated section of a parsed container and typed, little-endian
//! access to its elements.

use core::iter::FusedIterator;
use core::marker::PhantomData;
use core::slice::ChunksExact;

use super::error::SectionError;
use super::format::{Dtype, MAX_RANK};
use crate::packed::{PackedLayout, PackedMatrix};
use crate::quant::BitWidth;

/// One validated section of a parsed [`Container`](crate::container::Container).
///
/// Its payload length always matches dtype, bits and shape, so the typed
/// accessors only fail on a dtype mismatch or an out-of-range index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section<'a> {
    pub(crate) name: &'a str,
    pub(crate) dtype: Dtype,
    pub(crate) bits: Option<BitWidth>,
    pub(crate) rank: u8,
    pub(crate) dims: [u32; MAX_RANK],
    pub(crate) data: &'a [u8],
}

impl<'a> Section<'a> {
    /// The section name.
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// Element type.
    pub const fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Code width of a packed section (`None` for other dtypes).
    pub const fn bit_width(&self) -> Option<BitWidth> {
        self.bits
    }

    /// Number of dimensions.
    pub const fn rank(&self) -> u8 {
        self.rank
    }

    /// All four dims field values (zero past the rank).
    pub const fn dims(&self) -> [u32; MAX_RANK] {
        self.dims
    }

    /// The used dimensions, `dims[..rank]`.
    pub fn shape(&self) -> &[u32] {
        self.dims.get(..usize::from(self.rank)).unwrap_or(&[])
    }

    /// The raw payload bytes.
    pub const fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Number of elements (`product(shape)`, 1 for a scalar; rows · cols for
    /// packed sections).
    pub fn element_count(&self) -> usize {
        self.shape().iter().fold(1usize, |acc, &dim| {
            acc.saturating_mul(usize::try_from(dim).unwrap_or(usize::MAX))
        })
    }

    /// A packed section as a [`PackedMatrix`].
    pub fn as_packed(&self) -> Result<PackedMatrix<'a>, SectionError> {
        let (Some(bits), &[rows, cols]) = (self.bits, self.shape()) else {
            return Err(SectionError::DtypeMismatch {
                expected: Dtype::Packed,
                actual: self.dtype,
            });
        };
        // Padding was validated by Container::parse; only the O(1) length
        // check is repeated.
        PackedMatrix::from_len_checked(PackedLayout::new(bits, rows, cols), self.data)
            .map_err(SectionError::Packed)
    }

    /// Iterator over the elements, decoded from little-endian.
    pub fn elements<T: Element>(&self) -> Result<Elements<'a, T>, SectionError> {
        if self.dtype != T::DTYPE {
            return Err(SectionError::DtypeMismatch {
                expected: T::DTYPE,
                actual: self.dtype,
            });
        }
        Ok(Elements {
            chunks: self.data.chunks_exact(T::SIZE),
            element: PhantomData,
        })
    }

    /// Element `index`.
    pub fn read<T: Element>(&self, index: usize) -> Result<T, SectionError> {
        let mut elements = self.elements::<T>()?;
        let len = elements.len();
        elements
            .nth(index)
            .ok_or(SectionError::IndexOutOfBounds { index, len })
    }

    /// Element `index` of an `I32` section.
    pub fn read_i32(&self, index: usize) -> Result<i32, SectionError> {
        self.read(index)
    }

    /// The elements of a `U8` section.
    pub fn u8s(&self) -> Result<Elements<'a, u8>, SectionError> {
        self.elements()
    }

    /// The elements of an `I8` section.
    pub fn i8s(&self) -> Result<Elements<'a, i8>, SectionError> {
        self.elements()
    }

    /// The elements of an `I16` section.
    pub fn i16s(&self) -> Result<Elements<'a, i16>, SectionError> {
        self.elements()
    }

    /// The elements of an `I32` section.
    pub fn i32s(&self) -> Result<Elements<'a, i32>, SectionError> {
        self.elements()
    }

    /// The elements of an `F32` section.
    pub fn f32s(&self) -> Result<Elements<'a, f32>, SectionError> {
        self.elements()
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for i8 {}
    impl Sealed for i16 {}
    impl Sealed for i32 {}
    impl Sealed for f32 {}
}

/// A scalar type a section can hold (`u8`, `i8`, `i16`, `i32`, `f32`).
pub trait Element: sealed::Sealed + Copy {
    /// The dtype whose payload holds this type.
    const DTYPE: Dtype;
    /// Bytes per element.
    const SIZE: usize;
    /// Decodes one element from exactly `SIZE` little-endian bytes (missing
    /// bytes read as zero, extra bytes are ignored).
    fn from_le_slice(bytes: &[u8]) -> Self;
}

fn le_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (dst, src) in out.iter_mut().zip(bytes) {
        *dst = *src;
    }
    out
}

macro_rules! impl_element {
    ($ty:ty, $dtype:expr) => {
        impl Element for $ty {
            const DTYPE: Dtype = $dtype;
            const SIZE: usize = core::mem::size_of::<$ty>();
            fn from_le_slice(bytes: &[u8]) -> Self {
                <$ty>::from_le_bytes(le_array(bytes))
            }
        }
    };
}

impl_element!(u8, Dtype::U8);
impl_element!(i8, Dtype::I8);
impl_element!(i16, Dtype::I16);
impl_element!(i32, Dtype::I32);
impl_element!(f32, Dtype::F32);

/// Iterator over the little-endian elements of a section.
#[derive(Clone, Debug)]
pub struct Elements<'a, T> {
    chunks: ChunksExact<'a, u8>,
    element: PhantomData<T>,
}

impl<T: Element> Iterator for Elements<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.chunks.next().map(T::from_le_slice)
    }

    fn nth(&mut self, n: usize) -> Option<T> {
        self.chunks.nth(n).map(T::from_le_slice)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl<T: Element> DoubleEndedIterator for Elements<'_, T> {
    fn next_back(&mut self) -> Option<T> {
        self.chunks.next_back().map(T::from_le_slice)
    }
}

impl<T: Element> ExactSizeIterator for Elements<'_, T> {}
impl<T: Element> FusedIterator for Elements<'_, T> {}
