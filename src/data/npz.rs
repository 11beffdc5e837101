//! `.npz` data files (NumPy's `np.savez` / `np.savez_compressed`).
//!
//! The archive holds an array `X` of shape N×n×d (float32 or float64) and an
//! array `y`: floats of shape (N) or (N, c) are real targets, integers of shape
//! (N) are class labels 0..c. Every failure is an [`Error`] naming the file and
//! what is wrong with it; no input makes the reader panic.
//!
//! Sizes: ndarray-npy allocates the array a `.npy` header describes before it
//! reads the data, and offers no header-only read of an archive member. So
//! before reading, `check_visible_headers` checks every `.npy` header that
//! the archive stores verbatim (uncompressed members, as `np.savez` writes
//! them) and refuses shapes the archive cannot hold. A header inside a
//! deflate-compressed member is only seen by ndarray-npy; a forged one can
//! still cost one large, lazily zeroed allocation. Closing that gap needs the
//! `zip` crate as a direct dependency, to read each member's header first.

use std::fs::File;
use std::io::{BufWriter, Cursor, Read, Seek};
use std::path::Path;

use ndarray::{Array1, ArrayD, ArrayView2, ArrayView3, IxDyn, OwnedRepr};
use ndarray_npy::npy::header::Header;
use ndarray_npy::{NpzReader, NpzWriter, ReadNpyError, ReadNpzError, ReadableElement};

use super::{checked_len, Dataset};
use crate::error::{Error, Result};

/// The most classes an integer `y` may imply (its largest label + 1): the
/// one-hot targets take N·c values, so a stray huge label must not allocate.
pub const MAX_CLASSES: usize = 1 << 16;

/// Reads a data set from a `.npz` file (compressed or not). The file is read
/// into memory first (for the header checks), so the peak memory is about the
/// file's size plus the data set's.
pub fn read_npz(path: &Path) -> Result<Dataset> {
    read_npz_inputs(path, true).map(|(ds, _)| ds)
}

/// Reads `X`, and `y` when the file has it (`require_y` false): without `y`
/// the data set holds zero targets and the flag says so (for prediction).
pub fn read_npz_inputs(path: &Path, require_y: bool) -> Result<(Dataset, bool)> {
    if path.is_dir() {
        return Err(format_error(path, "is a directory, not a .npz file"));
    }
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    read_from(&bytes, path, require_y)
}

/// Reads a data set from the bytes of a `.npz` file, by the same code as
/// [`read_npz`] (errors name the path `<memory>`).
pub fn read_npz_bytes(bytes: &[u8]) -> Result<Dataset> {
    read_from(bytes, Path::new("<memory>"), true).map(|(ds, _)| ds)
}

/// The `y` of a file that has none: zero targets, one per sample of `x`.
pub(crate) fn zero_targets(x: &RawArray) -> RawArray {
    let n = x.shape.first().copied().unwrap_or(0);
    RawArray {
        shape: vec![n],
        dtype: Dtype::F64,
        values: Values::Float(vec![0.0; n]),
    }
}

/// Writes `ds` as an uncompressed `.npz`: `X` as float64 (N, n, d), `y` as
/// float64 (N, c) for real targets or int64 (N) for class labels.
pub fn write_npz(path: &Path, ds: &Dataset) -> Result<()> {
    ds.validate()?;
    let (n, t, d, c) = ds.shape();
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    let mut npz = NpzWriter::new(BufWriter::new(file));
    let x = ArrayView3::from_shape((n, t, d), &ds.x).map_err(|e| shape_bug("X", e))?;
    npz.add_array("X", &x).map_err(|e| write_error(path, e))?;
    let added = match &ds.labels {
        Some(labels) => {
            let y: Array1<i64> = labels.iter().map(|&l| l as i64).collect();
            npz.add_array("y", &y)
        }
        None => {
            let y = ArrayView2::from_shape((n, c), &ds.y).map_err(|e| shape_bug("y", e))?;
            npz.add_array("y", &y)
        }
    };
    added.map_err(|e| write_error(path, e))?;
    npz.finish().map_err(|e| write_error(path, e))?;
    Ok(())
}

/// Writes a rows×cols float64 matrix (row-major `data`) as a `.npy` file.
pub fn write_npy_matrix(path: &Path, rows: usize, cols: usize, data: &[f64]) -> Result<()> {
    if rows.checked_mul(cols) != Some(data.len()) {
        return Err(Error::Invalid(format!(
            "cannot write a {rows}×{cols} matrix from {} values",
            data.len()
        )));
    }
    let a = ArrayView2::from_shape((rows, cols), data).map_err(|e| shape_bug("matrix", e))?;
    ndarray_npy::write_npy(path, &a).map_err(|e| write_error(path, e))
}

/// Element types an array may be read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dtype {
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

impl Dtype {
    /// The type of a `.npy` descriptor such as `<f8`: exactly the descriptors
    /// ndarray-npy reads (either byte order; one-byte types as numpy writes them).
    fn from_descr(descr: &str) -> Option<Dtype> {
        Some(match descr {
            "<f4" | ">f4" => Dtype::F32,
            "<f8" | ">f8" => Dtype::F64,
            "|i1" | "i1" | "b" => Dtype::I8,
            "<i2" | ">i2" => Dtype::I16,
            "<i4" | ">i4" => Dtype::I32,
            "<i8" | ">i8" => Dtype::I64,
            "|u1" | "u1" | "B" => Dtype::U8,
            "<u2" | ">u2" => Dtype::U16,
            "<u4" | ">u4" => Dtype::U32,
            "<u8" | ">u8" => Dtype::U64,
            _ => return None,
        })
    }

    fn size(self) -> u64 {
        match self {
            Dtype::I8 | Dtype::U8 => 1,
            Dtype::I16 | Dtype::U16 => 2,
            Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        }
    }

    /// NumPy's name of the type.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
            Dtype::I8 => "int8",
            Dtype::I16 => "int16",
            Dtype::I32 => "int32",
            Dtype::I64 => "int64",
            Dtype::U8 => "uint8",
            Dtype::U16 => "uint16",
            Dtype::U32 => "uint32",
            Dtype::U64 => "uint64",
        }
    }
}

/// An array's values converted to f64 (floats) or i64 (integers), in C order.
pub(crate) enum Values {
    Float(Vec<f64>),
    /// uint64 values above i64::MAX saturate; they are invalid labels anyway.
    Int(Vec<i64>),
}

/// One array as read from a file, before it becomes part of a [`Dataset`].
pub(crate) struct RawArray {
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    pub values: Values,
}

/// Builds the data set from the arrays `X` and `y` of the file `path`,
/// checking ranks, types and sample counts (shared with the safetensors reader).
pub(crate) fn dataset_from_arrays(x: RawArray, y: RawArray, path: &Path) -> Result<Dataset> {
    let &[n, t, d] = x.shape.as_slice() else {
        return Err(format_error(
            path,
            format!("X must be 3-D (N×n×d), got shape {:?}", x.shape),
        ));
    };
    let Values::Float(xv) = x.values else {
        return Err(format_error(
            path,
            format!("X must be float32 or float64, got {}", x.dtype.name()),
        ));
    };
    match y.shape.first() {
        None => {
            return Err(format_error(
                path,
                "y must be 1-D (N) or 2-D (N×c), got a scalar",
            ))
        }
        Some(&m) if m != n => {
            return Err(format_error(
                path,
                format!("X has N = {n} samples but y has {m}: they need one entry per sample"),
            ))
        }
        Some(_) => {}
    }
    match y.values {
        Values::Float(yv) => {
            let c = match y.shape.as_slice() {
                [_] => 1,
                [_, c] => *c,
                s => {
                    return Err(format_error(
                        path,
                        format!("float y must be 1-D (N) or 2-D (N×c), got shape {s:?}"),
                    ))
                }
            };
            Dataset::new_real(xv, (n, t, d), yv, c)
        }
        Values::Int(yv) => {
            if y.shape.len() != 1 {
                return Err(format_error(
                    path,
                    format!(
                        "integer y holds class labels and must be 1-D (N), got shape {:?} \
                         ({}); store real targets as floats",
                        y.shape,
                        y.dtype.name()
                    ),
                ));
            }
            let (labels, n_classes) = labels_from_ints(&yv, path)?;
            checked_len("one-hot y", &[n, n_classes], 8)?;
            Dataset::new_classes(xv, (n, t, d), labels, n_classes)
        }
    }
}

/// Class labels from integers, with the class count max + 1.
fn labels_from_ints(values: &[i64], path: &Path) -> Result<(Vec<usize>, usize)> {
    if let Some((i, v)) = values.iter().enumerate().find(|(_, &v)| v < 0) {
        return Err(format_error(
            path,
            format!("y[{i}] = {v} is negative: class labels must be 0, 1, 2, …"),
        ));
    }
    let max = values.iter().copied().max().unwrap_or(0);
    if max >= MAX_CLASSES as i64 {
        return Err(format_error(
            path,
            format!(
                "label {max} in y implies {max} + 1 classes; at most {MAX_CLASSES} are supported"
            ),
        ));
    }
    let labels = values.iter().map(|&v| v as usize).collect();
    Ok((labels, max as usize + 1))
}

/// The shared reader: `path` only names the source in errors.
fn read_from(bytes: &[u8], path: &Path, require_y: bool) -> Result<(Dataset, bool)> {
    check_visible_headers(bytes, path)?;
    let mut npz = NpzReader::new(Cursor::new(bytes)).map_err(|e| {
        format_error(
            path,
            format!("not a valid .npz file (a zip archive of .npy arrays), or truncated: {e}"),
        )
    })?;
    let names = npz
        .names()
        .map_err(|e| format_error(path, format!("cannot list the arrays of the archive: {e}")))?;
    let has_y = names.iter().any(|n| n == "y");
    for want in ["X", "y"] {
        if !names.iter().any(|n| n == want) && (want == "X" || require_y) {
            return Err(format_error(
                path,
                format!(
                    "no array '{want}' in the archive, which holds {names:?}; \
                     expected X (N×n×d) and y (N) or (N×c)"
                ),
            ));
        }
    }
    let x = read_array(&mut npz, "X", path)?;
    let y = if has_y {
        read_array(&mut npz, "y", path)?
    } else {
        zero_targets(&x)
    };
    Ok((dataset_from_arrays(x, y, path)?, has_y))
}

/// Refuses, before anything is allocated, a `.npy` header stored verbatim in
/// the archive whose shape needs more bytes than the archive can hold. Deflate
/// expands at most 1032:1, so no member of a valid archive of S bytes holds
/// more than 1032·S bytes; the check thus never rejects a valid file, and it
/// stops forged shapes in uncompressed members before ndarray-npy allocates.
pub(crate) fn check_visible_headers(bytes: &[u8], path: &Path) -> Result<()> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    let bound = (bytes.len() as u64)
        .saturating_mul(1032)
        .saturating_add(1024);
    let limit = bound.min(super::MAX_ARRAY_BYTES);
    let too_large = |what: String, need: Option<u64>| {
        let why = match need {
            Some(need) if need <= bound => format!("above the limit of {limit} bytes"),
            _ => format!(
                "more than this {}-byte archive can hold: the file is corrupt",
                bytes.len()
            ),
        };
        Error::TooLarge(format!("{}: {what}, {why}", path.display()))
    };
    let mut start = 0;
    while let Some(off) = find(&bytes[start..], MAGIC) {
        let at = start + off;
        start = at + 1;
        // ndarray-npy allocates the header's own length first: check it too.
        let header_len = match bytes.get(at + 6..at + 12) {
            Some([1, 0, a, b, ..]) => u64::from(u16::from_le_bytes([*a, *b])),
            Some([2 | 3, 0, a, b, c, d]) => u64::from(u32::from_le_bytes([*a, *b, *c, *d])),
            _ => continue,
        };
        if header_len > limit {
            let what = format!("a .npy header claims {header_len} bytes");
            return Err(too_large(what, Some(header_len)));
        }
        let Ok(header) = Header::from_reader(&mut &bytes[at..]) else {
            continue; // not a header after all, or a broken one ndarray-npy reports
        };
        // Unknown types count one byte per element: a lower bound, never a false alarm.
        let elem = header
            .type_descriptor
            .as_string()
            .and_then(|d| Dtype::from_descr(d))
            .map_or(1, Dtype::size);
        let need = header
            .shape
            .iter()
            .try_fold(elem, |acc, &s| acc.checked_mul(s as u64));
        if need.is_some_and(|b| b <= limit) {
            continue;
        }
        let bytes_needed = need.map_or("more than 2^64".to_string(), |b| b.to_string());
        let what = format!(
            "an array of shape {:?} needs {bytes_needed} bytes",
            header.shape
        );
        return Err(too_large(what, need));
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads the array `name`, whatever its supported element type.
pub(crate) fn read_array<R: Read + Seek>(
    npz: &mut NpzReader<R>,
    name: &str,
    path: &Path,
) -> Result<RawArray> {
    let dtype = probe_dtype(npz, name, path)?;
    let (shape, values) = match dtype {
        Dtype::F32 => floats(read_as::<f32, R>(npz, name, path)?, f64::from),
        Dtype::F64 => float64(read_as::<f64, R>(npz, name, path)?),
        Dtype::I8 => ints(read_as::<i8, R>(npz, name, path)?, i64::from),
        Dtype::I16 => ints(read_as::<i16, R>(npz, name, path)?, i64::from),
        Dtype::I32 => ints(read_as::<i32, R>(npz, name, path)?, i64::from),
        Dtype::I64 => ints(read_as::<i64, R>(npz, name, path)?, |v| v),
        Dtype::U8 => ints(read_as::<u8, R>(npz, name, path)?, i64::from),
        Dtype::U16 => ints(read_as::<u16, R>(npz, name, path)?, i64::from),
        Dtype::U32 => ints(read_as::<u32, R>(npz, name, path)?, i64::from),
        Dtype::U64 => ints(read_as::<u64, R>(npz, name, path)?, |v| {
            i64::try_from(v).unwrap_or(i64::MAX)
        }),
    };
    Ok(RawArray {
        shape,
        dtype,
        values,
    })
}

/// The element type of array `name`. ndarray-npy has no header-only read, but
/// its one-byte element types check the descriptor before allocating, so a
/// read as `bool` fails with the stored descriptor at the cost of the header.
fn probe_dtype<R: Read + Seek>(npz: &mut NpzReader<R>, name: &str, path: &Path) -> Result<Dtype> {
    let descr = match npz.by_name::<OwnedRepr<bool>, IxDyn>(name) {
        Err(ReadNpzError::Npy(ReadNpyError::WrongDescriptor(d))) => d,
        Ok(_) => return Err(unsupported(path, name, "bool")),
        Err(e) => return Err(read_error(path, name, e)),
    };
    descr
        .as_string()
        .and_then(|s| Dtype::from_descr(s))
        .ok_or_else(|| unsupported(path, name, &descr.to_string()))
}

fn read_as<T: ReadableElement, R: Read + Seek>(
    npz: &mut NpzReader<R>,
    name: &str,
    path: &Path,
) -> Result<ArrayD<T>> {
    npz.by_name::<OwnedRepr<T>, IxDyn>(name)
        .map_err(|e| read_error(path, name, e))
}

/// Shape and values in C order (`iter` follows the logical order also for
/// Fortran-ordered arrays).
fn floats<T: Copy>(a: ArrayD<T>, f: impl Fn(T) -> f64) -> (Vec<usize>, Values) {
    (
        a.shape().to_vec(),
        Values::Float(a.iter().map(|&v| f(v)).collect()),
    )
}

/// As [`floats`], without a copy in the common C-ordered case.
fn float64(a: ArrayD<f64>) -> (Vec<usize>, Values) {
    if !a.is_standard_layout() {
        return floats(a, |v| v);
    }
    let shape = a.shape().to_vec();
    let (v, offset) = a.into_raw_vec_and_offset();
    match offset {
        Some(0) | None => (shape, Values::Float(v)),
        // Never produced by ndarray-npy; kept correct anyway.
        Some(o) => (shape, Values::Float(v[o..].to_vec())),
    }
}

fn ints<T: Copy>(a: ArrayD<T>, f: impl Fn(T) -> i64) -> (Vec<usize>, Values) {
    (
        a.shape().to_vec(),
        Values::Int(a.iter().map(|&v| f(v)).collect()),
    )
}

/// A read error of array `name`, said in terms of the file.
fn read_error(path: &Path, name: &str, e: ReadNpzError) -> Error {
    let msg = match e {
        ReadNpzError::Npy(ReadNpyError::MissingData) => {
            format!("array '{name}' is truncated: it holds less data than its shape needs")
        }
        ReadNpzError::Npy(ReadNpyError::ExtraBytes(k)) => {
            format!("array '{name}' has {k} bytes beyond the data its shape needs")
        }
        ReadNpzError::Npy(ReadNpyError::ParseHeader(e)) => {
            format!("array '{name}' has an invalid .npy header: {e}")
        }
        ReadNpzError::Npy(ReadNpyError::LengthOverflow) => {
            return Error::TooLarge(format!(
                "{}: the shape of array '{name}' overflows the address space",
                path.display()
            ))
        }
        ReadNpzError::Npy(ReadNpyError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("array '{name}' is truncated: {e}")
        }
        e => format!("cannot read array '{name}' (corrupt or truncated archive?): {e}"),
    };
    format_error(path, msg)
}

fn unsupported(path: &Path, name: &str, dtype: &str) -> Error {
    let allowed = if name == "X" {
        "float32 or float64"
    } else {
        "float32/float64 targets or int8..int64/uint8..uint64 labels"
    };
    format_error(
        path,
        format!("array '{name}' has unsupported dtype {dtype}; expected {allowed}"),
    )
}

pub(crate) fn format_error(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A write error: an I/O error (found along the source chain) keeps its kind.
fn write_error<E: std::error::Error + 'static>(path: &Path, e: E) -> Error {
    let mut cause: Option<&dyn std::error::Error> = Some(&e);
    let mut kind = std::io::ErrorKind::Other;
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            kind = io.kind();
            break;
        }
        cause = c.source();
    }
    io_error(path, std::io::Error::new(kind, e.to_string()))
}

/// A view of a validated data set always has its shape; a failure is a bug.
fn shape_bug(what: &str, e: ndarray::ShapeError) -> Error {
    Error::Invalid(format!("{what} does not match its shape: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, Array2, Array3, ShapeBuilder};
    use rand::{Rng, SeedableRng};

    fn sample_x<T: From<i8> + Clone>(n: usize) -> Array3<T> {
        Array3::from_shape_fn((n, 4, 3), |(i, k, q)| {
            T::from((i + 2 * k + 3 * q) as i8 - 5)
        })
    }

    /// The bytes of an npz holding the given arrays (all f64 unless added by `extra`).
    fn npz_bytes(compressed: bool, add: impl FnOnce(&mut NpzWriter<Cursor<Vec<u8>>>)) -> Vec<u8> {
        let cur = Cursor::new(Vec::new());
        let mut w = if compressed {
            NpzWriter::new_compressed(cur)
        } else {
            NpzWriter::new(cur)
        };
        add(&mut w);
        w.finish().unwrap().into_inner()
    }

    fn valid_npz(compressed: bool) -> Vec<u8> {
        npz_bytes(compressed, |w| {
            w.add_array("X", &sample_x::<f64>(5)).unwrap();
            w.add_array("y", &Array1::from(vec![0i64, 1, 2, 1, 0]))
                .unwrap();
        })
    }

    fn err_msg(r: Result<Dataset>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn reads_f32_x_and_real_1d_y() {
        let bytes = npz_bytes(false, |w| {
            w.add_array("X", &sample_x::<f32>(5)).unwrap();
            w.add_array("y", &Array1::from(vec![0.5f32, 1.0, -2.0, 3.0, 4.0]))
                .unwrap();
        });
        let ds = read_npz_bytes(&bytes).unwrap();
        assert_eq!(ds.shape(), (5, 4, 3, 1));
        assert_eq!(ds.token(1, 2), &[0.0, 3.0, 6.0]);
        assert_eq!(ds.y, vec![0.5, 1.0, -2.0, 3.0, 4.0]);
        assert!(ds.labels.is_none());
    }

    #[test]
    fn reads_compressed_and_integer_labels() {
        for (compressed, bytes) in [(true, valid_npz(true)), (false, valid_npz(false))] {
            let ds = read_npz_bytes(&bytes).unwrap_or_else(|e| panic!("{compressed}: {e}"));
            assert_eq!(ds.shape(), (5, 4, 3, 3));
            assert_eq!(ds.labels.as_deref(), Some(&[0, 1, 2, 1, 0][..]));
        }
        for labels in [
            npz_bytes(false, |w| {
                w.add_array("X", &sample_x::<f64>(3)).unwrap();
                w.add_array("y", &Array1::from(vec![1i32, 0, 1])).unwrap();
            }),
            npz_bytes(false, |w| {
                w.add_array("X", &sample_x::<f64>(3)).unwrap();
                w.add_array("y", &Array1::from(vec![1u8, 0, 1])).unwrap();
            }),
        ] {
            let ds = read_npz_bytes(&labels).unwrap();
            assert_eq!(ds.labels.as_deref(), Some(&[1, 0, 1][..]));
            assert_eq!(ds.n_outputs, 2);
        }
    }

    #[test]
    fn fortran_order_is_read_in_logical_order() {
        let x = sample_x::<f64>(2);
        let mut xf = Array::zeros(x.raw_dim().f());
        xf.assign(&x);
        let bytes = npz_bytes(false, |w| {
            w.add_array("X", &xf).unwrap();
            w.add_array("y", &Array1::from(vec![1.0, 2.0])).unwrap();
        });
        let ds = read_npz_bytes(&bytes).unwrap();
        assert_eq!(ds.x, x.iter().copied().collect::<Vec<_>>());
    }

    #[test]
    fn file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let x: Vec<f64> = (0..2 * 3 * 2).map(|v| v as f64 * 0.25 - 1.0).collect();
        let real = Dataset::new_real(x.clone(), (2, 3, 2), vec![1.0, -1.0, 0.5, 2.0], 2).unwrap();
        let classes = Dataset::new_classes(x, (2, 3, 2), vec![2, 0], 3).unwrap();
        for ds in [real, classes] {
            let p = dir.path().join("d.npz");
            write_npz(&p, &ds).unwrap();
            let back = read_npz(&p).unwrap();
            assert_eq!(back.shape(), ds.shape());
            assert_eq!(back.x, ds.x);
            assert_eq!(back.y, ds.y);
            assert_eq!(back.labels, ds.labels);
        }
    }

    #[test]
    fn writes_npy_matrix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pred.npy");
        write_npy_matrix(&p, 2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let a: Array2<f64> = ndarray_npy::read_npy(&p).unwrap();
        assert_eq!(a, ndarray::array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        assert!(write_npy_matrix(&p, 2, 2, &[1.0]).is_err());
        let bad = dir.path().join("no/such/dir/p.npy");
        assert!(matches!(
            write_npy_matrix(&bad, 1, 1, &[1.0]),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.npz");
        let e = read_npz(&missing).unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(e.to_string().contains("missing.npz"));
        assert!(matches!(read_npz(dir.path()), Err(Error::Format { .. })));
        let junk = dir.path().join("junk.npz");
        std::fs::write(&junk, b"this is not a zip file").unwrap();
        let msg = err_msg(read_npz(&junk));
        assert!(
            msg.contains("junk.npz") && msg.contains("not a valid .npz"),
            "{msg}"
        );
    }

    #[test]
    fn content_errors_name_the_problem() {
        let cases: Vec<(Vec<u8>, &[&str])> = vec![
            (
                npz_bytes(false, |w| {
                    w.add_array("X", &sample_x::<f64>(2)).unwrap();
                    w.add_array("z", &Array1::from(vec![1.0, 2.0])).unwrap();
                }),
                &["'y'", "\"z\""],
            ),
            (
                npz_bytes(false, |w| {
                    w.add_array("y", &Array1::from(vec![1.0, 2.0])).unwrap();
                }),
                &["'X'", "\"y\""],
            ),
            (
                npz_bytes(false, |w| {
                    w.add_array("X", &Array2::<f64>::zeros((2, 3))).unwrap();
                    w.add_array("y", &Array1::from(vec![1.0, 2.0])).unwrap();
                }),
                &["X", "3-D", "[2, 3]"],
            ),
            (
                npz_bytes(false, |w| {
                    w.add_array("X", &sample_x::<f64>(3)).unwrap();
                    w.add_array("y", &Array1::from(vec![1.0, 2.0])).unwrap();
                }),
                &["N = 3", "y has 2"],
            ),
            (
                npz_bytes(false, |w| {
                    w.add_array("X", &sample_x::<i32>(2)).unwrap();
                    w.add_array("y", &Array1::from(vec![1.0, 2.0])).unwrap();
                }),
                &["X", "int32"],
            ),
            (
                npz_bytes(false, |w| {
                    w.add_array("X", &sample_x::<f64>(2)).unwrap();
                    w.add_array("y", &Array1::from(vec![true, false])).unwrap();
                }),
                &["y", "unsupported dtype bool"],
            ),
            (
                npz_bytes(false, |w| {
                    w.add_array("X", &sample_x::<f64>(2)).unwrap();
                    w.add_array("y", &Array1::from(vec![1i64, -1])).unwrap();
                }),
                &["y[1] = -1", "negative"],
            ),
            (
                npz_bytes(false, |w| {
                    w.add_array("X", &sample_x::<f64>(2)).unwrap();
                    w.add_array("y", &Array1::from(vec![1i64, 1 << 40]))
                        .unwrap();
                }),
                &["classes"],
            ),
            (
                npz_bytes(false, |w| {
                    w.add_array("X", &sample_x::<f64>(2)).unwrap();
                    w.add_array("y", &Array2::<i64>::zeros((2, 2))).unwrap();
                }),
                &["1-D", "labels"],
            ),
            (
                npz_bytes(false, |w| {
                    w.add_array("X", &sample_x::<f64>(2)).unwrap();
                    w.add_array("y", &Array3::<f64>::zeros((2, 1, 1))).unwrap();
                }),
                &["y", "2-D"],
            ),
            (
                npz_bytes(false, |w| {
                    let mut x = sample_x::<f64>(2);
                    x[[1, 2, 0]] = f64::NAN;
                    w.add_array("X", &x).unwrap();
                    w.add_array("y", &Array1::from(vec![1.0, 2.0])).unwrap();
                }),
                &["X[1, 2, 0]", "NaN"],
            ),
            (
                npz_bytes(false, |w| {
                    w.add_array("X", &sample_x::<f64>(2)).unwrap();
                    w.add_array("y", &Array1::from(vec![1.0, f64::INFINITY]))
                        .unwrap();
                }),
                &["y[1]", "inf"],
            ),
        ];
        for (bytes, words) in cases {
            let msg = err_msg(read_npz_bytes(&bytes));
            for w in words {
                assert!(msg.contains(w), "{msg:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn truncated_data_is_a_format_error() {
        // Cut X's data short inside a stored archive by rewriting its header shape.
        let bytes = valid_npz(false);
        let pos = find(&bytes, b"(5, 4, 3)").expect("X header");
        let mut bad = bytes.clone();
        bad[pos..pos + 9].copy_from_slice(b"(6, 4, 3)");
        let msg = err_msg(read_npz_bytes(&bad));
        assert!(msg.contains("'X'"), "{msg}");
    }

    /// A forged header in an uncompressed member is refused before ndarray-npy
    /// would allocate its shape (which would abort the process).
    #[test]
    fn forged_sizes_are_refused_before_allocating() {
        let bytes = valid_npz(false);
        // Rewrite the dict from X's shape on, using the header's space padding.
        let pos = find(&bytes, b"(5, 4, 3)").expect("X header");
        let end = pos + find(&bytes[pos..], b"\n").unwrap();
        let mut forged = b"(99999999999999, 4, 3), }".to_vec();
        forged.resize(end - pos, b' ');
        let mut bad = bytes.clone();
        bad[pos..end].copy_from_slice(&forged);
        let e = read_npz_bytes(&bad).unwrap_err();
        assert!(matches!(e, Error::TooLarge(_)), "{e}");
        assert!(e.to_string().contains("9599999999999904 bytes"), "{e}");
        // A version-2 header length of 4 GiB.
        let magic = find(&bytes, b"\x93NUMPY").unwrap();
        let mut bad = bytes.clone();
        bad[magic + 6..magic + 12].copy_from_slice(&[2, 0, 255, 255, 255, 255]);
        assert!(matches!(read_npz_bytes(&bad), Err(Error::TooLarge(_))));
    }

    /// Random corruptions of valid archives: never a panic, and every strict
    /// prefix (the central directory sits at the end) is an error.
    #[test]
    fn corrupt_bytes_never_panic() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let originals = [valid_npz(false), valid_npz(true)];
        for round in 0..2000 {
            let orig = &originals[round % 2];
            let mut b = orig.clone();
            let truncated = round % 4 < 2;
            if truncated {
                b.truncate(rng.random_range(0..orig.len()));
            } else {
                for _ in 0..rng.random_range(1..8) {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
            }
            let out = std::panic::catch_unwind(|| read_npz_bytes(&b));
            let out = out.unwrap_or_else(|_| panic!("panic on round {round}"));
            if truncated {
                assert!(out.is_err(), "truncated file accepted on round {round}");
            }
        }
    }
}
