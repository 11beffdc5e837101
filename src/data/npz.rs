//! `.npz` data files (NumPy's `np.savez` / `np.savez_compressed`).
//!
//! The archive holds an array `X` of shape N×n×d (float32 or float64) and an
//! array `y`. Targets per sample: floats of shape (N) or (N, c) are real
//! targets, integers of shape (N) are class labels 0..c. Targets per position
//! ([`Targets::PerPosition`]): floats of shape (N, n, c) are real targets,
//! integers of shape (N, n) class labels; when the caller asks for targets per
//! position, floats of shape (N, n) are real targets with c = 1. Every failure
//! is an [`Error`] naming the file and what is wrong with it; no input makes
//! the reader panic.
//!
//! Sizes: each array is read from its archive member through the `zip`
//! crate. Its `.npy` header (magic string, version 1.0/2.0/3.0, a dictionary
//! of `descr`, `fortran_order` and `shape`) is read first, and the bytes its
//! shape needs are checked with overflow-checked arithmetic against the
//! member's declared size less the header, for stored and deflate-compressed
//! members alike, before anything the header describes is allocated. The
//! values then grow only as the member's bytes arrive, so a forged size
//! costs at most what the archive really holds.

use std::fs::File;
use std::io::{BufWriter, Cursor, Read, Seek};
use std::path::Path;

use ndarray::{Array1, Array2, ArrayD, ArrayView2, ArrayView3, IxDyn, ShapeBuilder};
use ndarray_npy::npy::header::Header;
use ndarray_npy::NpzWriter;
use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

use super::{checked_len, Dataset, Targets};
use crate::error::{Error, Result};

/// The most classes an integer `y` may imply (its largest label + 1): the
/// one-hot targets take N·c values, so a stray huge label must not allocate.
pub const MAX_CLASSES: usize = 1 << 16;

/// Reads a data set with targets per sample from a `.npz` file (compressed
/// or not). The file is read into memory first, so the peak memory is about
/// the file's size plus the data set's.
pub fn read_npz(path: &Path) -> Result<Dataset<'static>> {
    read_npz_inputs(path, true).map(|(ds, _)| ds)
}

/// Reads `X`, and `y` when the file has it (`require_y` false): without `y`
/// the data set holds zero targets and the flag says so (for prediction).
pub fn read_npz_inputs(path: &Path, require_y: bool) -> Result<(Dataset<'static>, bool)> {
    read_npz_as(path, require_y, Some(Targets::PerSample))
}

/// Reads a data set from the bytes of a `.npz` file, by the same code as
/// [`read_npz`] (errors name the path `<memory>`).
pub fn read_npz_bytes(bytes: &[u8]) -> Result<Dataset<'static>> {
    read_npz_bytes_as(bytes, Some(Targets::PerSample))
}

/// The reader behind every `.npz` entry point: targets per sample or per
/// position as `layout` asks, or as `y`'s rank says when it is `None`
/// (floats (N, n, c) and integers (N, n) per position, the rest per sample).
/// Without `y` (`require_y` false) the data set holds zero targets, c = 1,
/// and the flag says so.
pub fn read_npz_as(
    path: &Path,
    require_y: bool,
    layout: Option<Targets>,
) -> Result<(Dataset<'static>, bool)> {
    if path.is_dir() {
        return Err(format_error(path, "is a directory, not a .npz file"));
    }
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    read_from(&bytes, path, require_y, layout)
}

/// As [`read_npz_as`] with `y` required, from the bytes of a file (errors
/// name `<memory>`).
pub fn read_npz_bytes_as(bytes: &[u8], layout: Option<Targets>) -> Result<Dataset<'static>> {
    read_from(bytes, Path::new("<memory>"), true, layout).map(|(ds, _)| ds)
}

/// The `y` of a file that has none: zero targets, c = 1, one per sample of
/// `x` (or per position of each sample for [`Targets::PerPosition`]).
pub(crate) fn zero_targets(x: &RawArray, layout: Option<Targets>) -> Result<RawArray> {
    let mut shape = vec![x.shape.first().copied().unwrap_or(0)];
    if layout == Some(Targets::PerPosition) {
        shape.push(x.shape.get(1).copied().unwrap_or(0));
    }
    let len = checked_len("y", &shape, 8)?;
    Ok(RawArray {
        shape,
        dtype: Dtype::F64,
        values: Values::Float(vec![0.0; len]),
    })
}

/// Writes `ds` as an uncompressed `.npz`: `X` as float64 (N, n, d); `y` as
/// float64 (N, c) for real targets or int64 (N) for class labels per sample,
/// float64 (N, n, c) or int64 (N, n) per position.
pub fn write_npz(path: &Path, ds: &Dataset) -> Result<()> {
    ds.validate()?;
    let (n, t, d, c) = ds.shape();
    // Written under a temporary name and renamed whole (see crate::atomic).
    let pending = crate::atomic::Pending::new(path)?;
    let file = File::create(pending.path()).map_err(|e| io_error(path, e))?;
    let mut npz = NpzWriter::new(BufWriter::new(file));
    let x = ArrayView3::from_shape((n, t, d), &ds.x).map_err(|e| shape_bug("X", e))?;
    npz.add_array("X", &x).map_err(|e| write_error(path, e))?;
    let added = match (&ds.labels, ds.targets) {
        (Some(labels), Targets::PerSample) => {
            let y: Array1<i64> = labels.iter().map(|&l| l as i64).collect();
            npz.add_array("y", &y)
        }
        (Some(labels), Targets::PerPosition) => {
            let y = Array2::from_shape_vec((n, t), labels.iter().map(|&l| l as i64).collect())
                .map_err(|e| shape_bug("y", e))?;
            npz.add_array("y", &y)
        }
        (None, Targets::PerSample) => {
            let y = ArrayView2::from_shape((n, c), &ds.y).map_err(|e| shape_bug("y", e))?;
            npz.add_array("y", &y)
        }
        (None, Targets::PerPosition) => {
            let y = ArrayView3::from_shape((n, t, c), &ds.y).map_err(|e| shape_bug("y", e))?;
            npz.add_array("y", &y)
        }
    };
    added.map_err(|e| write_error(path, e))?;
    let w = npz.finish().map_err(|e| write_error(path, e))?;
    w.into_inner().map_err(|e| io_error(path, e.into_error()))?;
    pending.commit()
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
    let pending = crate::atomic::Pending::new(path)?;
    ndarray_npy::write_npy(pending.path(), &a).map_err(|e| write_error(path, e))?;
    pending.commit()
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
/// checking ranks, types and sample counts (shared with the safetensors
/// reader). `layout` asks for targets per sample or per position; `None`
/// takes the layout from `y` (see the module doc).
pub(crate) fn dataset_from_arrays(
    x: RawArray,
    y: RawArray,
    path: &Path,
    layout: Option<Targets>,
) -> Result<Dataset<'static>> {
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
    let layout = layout.unwrap_or_else(|| match (&y.values, y.shape.len()) {
        (Values::Float(_), 3) | (Values::Int(_), 2) if y.shape[1] == t => Targets::PerPosition,
        _ => Targets::PerSample,
    });
    match layout {
        Targets::PerSample => per_sample(xv, (n, t, d), y, path),
        Targets::PerPosition => per_position(xv, (n, t, d), y, path),
    }
}

/// `y` of shape (N) or (N, c) floats, or (N) integer labels.
fn per_sample(
    xv: Vec<f64>,
    shape: (usize, usize, usize),
    y: RawArray,
    path: &Path,
) -> Result<Dataset<'static>> {
    let n = shape.0;
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
            Dataset::new_real(xv, shape, yv, c)
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
            let (labels, n_classes) = labels_from_ints(&yv, None, path)?;
            Dataset::new_classes(xv, shape, labels, n_classes)
        }
    }
}

/// `y` of shape (N, n, c) or (N, n) floats, or (N, n) integer labels.
fn per_position(
    xv: Vec<f64>,
    (n_s, n, d): (usize, usize, usize),
    y: RawArray,
    path: &Path,
) -> Result<Dataset<'static>> {
    let x_shape = [n_s, n, d];
    if y.shape.len() < 2 || y.shape[0] != n_s || y.shape[1] != n {
        return Err(format_error(
            path,
            format!(
                "a sequence target y must have shape (N, n, c) or (N, n) = ({n_s}, {n}, …) \
                 to match X of shape {x_shape:?}, got {:?}",
                y.shape
            ),
        ));
    }
    let bad = |what: &str| -> Result<Dataset<'static>> {
        Err(format_error(
            path,
            format!(
                "{what} y of shape {:?} ({}): expected floats (N, n, c) or (N, n), or integer \
                 labels (N, n)",
                y.shape,
                y.dtype.name()
            ),
        ))
    };
    match y.values {
        Values::Float(yv) => {
            let c = match y.shape.as_slice() {
                [_, _] => 1,
                [_, _, c] => *c,
                _ => return bad("unsupported"),
            };
            Dataset::new_real_per_position(xv, (n_s, n, d), yv, c)
        }
        Values::Int(yv) => {
            if y.shape.len() != 2 {
                return bad("integer");
            }
            let (labels, n_classes) = labels_from_ints(&yv, Some(n), path)?;
            Dataset::new_classes_per_position(xv, (n_s, n, d), labels, n_classes)
        }
    }
}

/// Class labels from integers, with the class count max + 1; `positions`
/// (n labels per sample, for labels per position) only shapes the messages.
fn labels_from_ints(
    values: &[i64],
    positions: Option<usize>,
    path: &Path,
) -> Result<(Vec<usize>, usize)> {
    if let Some((p, v)) = values.iter().enumerate().find(|(_, &v)| v < 0) {
        let at = match positions {
            Some(n) => format!("{}, {}", p / n, p % n),
            None => p.to_string(),
        };
        return Err(format_error(
            path,
            format!("y[{at}] = {v} is negative: class labels must be 0, 1, 2, …"),
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
    checked_len("one-hot y", &[values.len(), max as usize + 1], 8)?;
    let labels = values.iter().map(|&v| v as usize).collect();
    Ok((labels, max as usize + 1))
}

/// What an archive must hold, for the message when an array is missing.
pub(crate) fn expected_arrays(layout: Option<Targets>) -> &'static str {
    match layout {
        Some(Targets::PerSample) => "expected X (N×n×d) and y (N) or (N×c)",
        Some(Targets::PerPosition) => {
            "expected X (N×n×d) and y (N×n×c floats, or N×n integer labels)"
        }
        None => {
            "expected X (N×n×d) and y ((N) or (N×c) per sample, (N×n×c) or N×n labels per position)"
        }
    }
}

/// The shared reader: `path` only names the source in errors.
fn read_from(
    bytes: &[u8],
    path: &Path,
    require_y: bool,
    layout: Option<Targets>,
) -> Result<(Dataset<'static>, bool)> {
    let (mut zip, names) = open_archive(bytes, path)?;
    let has_y = names.iter().any(|n| n == "y");
    for want in ["X", "y"] {
        if !names.iter().any(|n| n == want) && (want == "X" || require_y) {
            return Err(format_error(
                path,
                format!(
                    "no array '{want}' in the archive, which holds {names:?}; {}",
                    expected_arrays(layout)
                ),
            ));
        }
    }
    let x = read_array(&mut zip, "X", path)?;
    let y = if has_y {
        read_array(&mut zip, "y", path)?
    } else {
        zero_targets(&x, layout)?
    };
    Ok((dataset_from_arrays(x, y, path, layout)?, has_y))
}

/// A `.npz` archive read from memory.
pub(crate) type MemArchive<'a> = ZipArchive<Cursor<&'a [u8]>>;

/// Opens the archive in `bytes` (only its central directory is read) and
/// lists its arrays: member names with one `.npy` suffix stripped, as NumPy
/// names them.
pub(crate) fn open_archive<'a>(
    bytes: &'a [u8],
    path: &Path,
) -> Result<(MemArchive<'a>, Vec<String>)> {
    let zip = ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        format_error(
            path,
            format!("not a valid .npz file (a zip archive of .npy arrays), or truncated: {e}"),
        )
    })?;
    let names = zip
        .file_names()
        .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_owned())
        .collect();
    Ok((zip, names))
}

/// The longest `.npy` header dictionary read: NumPy's own default limit
/// (`np.load(max_header_size=10000)`). A plain array's header is about 100
/// bytes; the literal parser takes time superlinear in odd headers' length
/// (about a second for 54 kB of nested brackets), which this bounds.
const MAX_HEADER_LEN: u64 = 10_000;

/// The deepest bracket nesting a header may have. A plain array's header
/// nests two deep (`{… (shape)}`); the literal parser backtracks on braces,
/// so deep nesting would cost time exponential in the depth.
const MAX_HEADER_NESTING: usize = 4;

/// Deflate expands at most 1032:1 (plus a little for tiny streams).
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Bytes asked of a member per read while decoding its values.
const CHUNK_BYTES: usize = 1 << 16;

/// What a member's `.npy` header says, checked against the member's size.
struct NpyLayout {
    dtype: Dtype,
    big_endian: bool,
    fortran: bool,
    shape: Vec<usize>,
    /// Elements, the product of `shape`.
    len: usize,
}

/// Reads the array `name` (the member `name`, else `name.npy`), whatever its
/// supported element type. The `.npy` header is read and checked against
/// the member's declared size before anything the header describes is
/// allocated, and the values grow only as the member's bytes arrive.
pub(crate) fn read_array<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    name: &str,
    path: &Path,
) -> Result<RawArray> {
    let npy_name = format!("{name}.npy");
    let member_name = if zip.index_for_name(name).is_some() {
        name
    } else {
        npy_name.as_str()
    };
    let mut member = zip
        .by_name(member_name)
        .map_err(|e| member_error(path, name, e))?;
    let member_size = member.size();
    if member.compression() == CompressionMethod::Deflated {
        let most = member
            .compressed_size()
            .saturating_mul(MAX_DEFLATE_RATIO)
            .saturating_add(1024);
        if member_size > most {
            return Err(format_error(
                path,
                format!(
                    "member '{member_name}' declares {member_size} bytes, more than its {} \
                     compressed bytes can expand to: the archive is corrupt",
                    member.compressed_size()
                ),
            ));
        }
    }
    let layout = read_header(&mut member, member_size, name, member_name, path)?;
    let values = read_values(&mut member, &layout, name, path)?;
    // Reading on to the member's end checks its CRC-32 (zip checks at the end).
    let mut extra = [0u8; 1];
    match member.read(&mut extra) {
        Ok(0) => {}
        Ok(_) => {
            return Err(format_error(
                path,
                format!("array '{name}' has bytes beyond the data its shape needs"),
            ))
        }
        Err(e) => return Err(io_read_error(path, name, e)),
    }
    Ok(RawArray {
        shape: layout.shape,
        dtype: layout.dtype,
        values,
    })
}

/// Reads and checks the `.npy` header at the start of a member of
/// `member_size` bytes (as the archive declares it): magic string, version
/// 1.0, 2.0 or 3.0, a header of at most [`MAX_HEADER_LEN`] bytes that the
/// member holds, and a shape whose data fills the rest of the member exactly.
fn read_header(
    r: &mut impl Read,
    member_size: u64,
    name: &str,
    member_name: &str,
    path: &Path,
) -> Result<NpyLayout> {
    let bad_header = |msg: String| {
        format_error(
            path,
            format!("array '{name}' has an invalid .npy header: {msg}"),
        )
    };
    let mut prefix = [0u8; 12];
    let read_prefix = |r: &mut dyn Read, buf: &mut [u8]| {
        r.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => bad_header(format!(
                "the {member_size}-byte member '{member_name}' is too short for a .npy header"
            )),
            _ => io_read_error(path, name, e),
        })
    };
    read_prefix(r, &mut prefix[..10])?;
    if &prefix[..6] != b"\x93NUMPY" {
        return Err(bad_header(format!(
            "member '{member_name}' does not start with the .npy magic string"
        )));
    }
    let (prefix_len, header_len) = match (prefix[6], prefix[7]) {
        (1, 0) => (10, u64::from(u16::from_le_bytes([prefix[8], prefix[9]]))),
        (2 | 3, 0) => {
            read_prefix(r, &mut prefix[10..12])?;
            let b = [prefix[8], prefix[9], prefix[10], prefix[11]];
            (12, u64::from(u32::from_le_bytes(b)))
        }
        (major, minor) => {
            return Err(bad_header(format!(
                "unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are read)"
            )))
        }
    };
    let header_end = prefix_len + header_len;
    if header_end > member_size {
        return Err(Error::TooLarge(format!(
            "{}: array '{name}': its .npy header claims {header_len} bytes, more than the \
             {member_size}-byte member '{member_name}' holds: the file is corrupt",
            path.display()
        )));
    }
    if header_len > MAX_HEADER_LEN {
        return Err(bad_header(format!(
            "it claims {header_len} bytes, above the limit of {MAX_HEADER_LEN}"
        )));
    }
    // Bounded by MAX_HEADER_LEN and by the member's size.
    let mut raw = Vec::with_capacity(prefix_len as usize + header_len as usize);
    raw.extend_from_slice(&prefix[..prefix_len as usize]);
    r.take(header_len)
        .read_to_end(&mut raw)
        .map_err(|e| io_read_error(path, name, e))?;
    if raw.len() as u64 != header_end {
        return Err(bad_header(format!(
            "member '{member_name}' ends inside its {header_len}-byte header"
        )));
    }
    let nesting = raw[prefix_len as usize..]
        .iter()
        .scan(0usize, |depth, &b| {
            match b {
                b'(' | b'[' | b'{' => *depth += 1,
                b')' | b']' | b'}' => *depth = depth.saturating_sub(1),
                _ => {}
            }
            Some(*depth)
        })
        .max()
        .unwrap_or(0);
    if nesting > MAX_HEADER_NESTING {
        return Err(bad_header(format!(
            "brackets nest {nesting} deep, more than the {MAX_HEADER_NESTING} a header needs"
        )));
    }
    let header = Header::from_reader(&mut raw.as_slice()).map_err(|e| bad_header(e.to_string()))?;
    let descr = header.type_descriptor.as_string().map(String::as_str);
    let Some(dtype) = descr.and_then(Dtype::from_descr) else {
        let shown = match descr {
            Some("|b1" | "b1" | "?") => "bool".to_string(),
            _ => header.type_descriptor.to_string(),
        };
        return Err(unsupported(path, name, &shown));
    };
    let big_endian = descr.is_some_and(|d| d.starts_with('>'));
    let shape = header.shape;
    let data_len = member_size - header_end;
    let too_large = |need: String| {
        Error::TooLarge(format!(
            "{}: array '{name}' of shape {shape:?} ({}) needs {need} bytes, but the member \
             '{member_name}' holds {data_len} bytes of data: the file is corrupt",
            path.display(),
            dtype.name(),
        ))
    };
    let Some(need) = shape
        .iter()
        .try_fold(dtype.size(), |acc, &s| acc.checked_mul(s as u64))
    else {
        return Err(too_large("more than 2^64".to_string()));
    };
    if need > data_len {
        if need > super::MAX_ARRAY_BYTES {
            return Err(too_large(need.to_string()));
        }
        return Err(format_error(
            path,
            format!(
                "array '{name}' is truncated: its shape {shape:?} ({}) needs {need} bytes of \
                 data, but the member '{member_name}' holds {data_len} ({member_size} bytes \
                 less a {header_end}-byte header)",
                dtype.name()
            ),
        ));
    }
    if need < data_len {
        return Err(format_error(
            path,
            format!(
                "array '{name}' has {} bytes beyond the data its shape needs",
                data_len - need
            ),
        ));
    }
    // The values are held as 8-byte numbers: refuse what exceeds the limit.
    let len = checked_len(&format!("{}: array '{name}'", path.display()), &shape, 8)?;
    Ok(NpyLayout {
        dtype,
        big_endian,
        fortran: header.layout.is_fortran(),
        shape,
        len,
    })
}

/// Decodes `layout.len` values from `r`, in C order.
fn read_values(r: &mut impl Read, layout: &NpyLayout, name: &str, path: &Path) -> Result<Values> {
    macro_rules! decode {
        ($t:ty, $n:literal, $variant:ident, $conv:expr) => {{
            let conv = $conv;
            let mut out = Vec::new();
            read_elements::<$n, _>(
                r,
                layout.len,
                &mut out,
                |b| {
                    let v = if layout.big_endian {
                        <$t>::from_be_bytes(b)
                    } else {
                        <$t>::from_le_bytes(b)
                    };
                    conv(v)
                },
                name,
                path,
            )?;
            Values::$variant(c_order(out, layout)?)
        }};
    }
    Ok(match layout.dtype {
        Dtype::F32 => decode!(f32, 4, Float, f64::from),
        Dtype::F64 => decode!(f64, 8, Float, |v: f64| v),
        Dtype::I8 => decode!(i8, 1, Int, i64::from),
        Dtype::I16 => decode!(i16, 2, Int, i64::from),
        Dtype::I32 => decode!(i32, 4, Int, i64::from),
        Dtype::I64 => decode!(i64, 8, Int, |v: i64| v),
        Dtype::U8 => decode!(u8, 1, Int, i64::from),
        Dtype::U16 => decode!(u16, 2, Int, i64::from),
        Dtype::U32 => decode!(u32, 4, Int, i64::from),
        Dtype::U64 => decode!(u64, 8, Int, |v: u64| i64::try_from(v).unwrap_or(i64::MAX)),
    })
}

/// Reads exactly `len` elements of `N` bytes from `r` into `out`, converting
/// each with `f`. `out` grows only as bytes arrive, and never beyond `len`.
fn read_elements<const N: usize, T>(
    r: &mut impl Read,
    len: usize,
    out: &mut Vec<T>,
    f: impl Fn([u8; N]) -> T,
    name: &str,
    path: &Path,
) -> Result<()> {
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut filled = 0;
    // len · N was checked against the member's size by the header check.
    let mut rest = r.take((len as u64).saturating_mul(N as u64));
    loop {
        let k = match rest.read(&mut chunk[filled..]) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_read_error(path, name, e)),
        };
        filled += k;
        let whole = filled / N * N;
        let new = whole / N;
        if out.capacity() - out.len() < new {
            // Double, up to `len`: the final vector is no larger than needed.
            let grow = (len - out.len()).min(out.len().max(CHUNK_BYTES)).max(new);
            out.reserve_exact(grow);
        }
        out.extend(
            chunk[..whole]
                .chunks_exact(N)
                .map(|b| f(b.try_into().expect("chunks of N bytes"))),
        );
        chunk.copy_within(whole..filled, 0);
        filled -= whole;
    }
    if out.len() != len {
        return Err(format_error(
            path,
            format!("array '{name}' is truncated: it holds less data than its shape needs"),
        ));
    }
    Ok(())
}

/// Values stored in Fortran order, put in C (logical) order.
fn c_order<T: Copy>(v: Vec<T>, layout: &NpyLayout) -> Result<Vec<T>> {
    if !layout.fortran || layout.shape.len() < 2 {
        return Ok(v);
    }
    let a = ArrayD::from_shape_vec(IxDyn(&layout.shape).f(), v)
        .map_err(|e| shape_bug("a Fortran-ordered array", e))?;
    Ok(a.iter().copied().collect())
}

/// A failure to find or open the member of array `name`.
fn member_error(path: &Path, name: &str, e: ZipError) -> Error {
    let msg = match e {
        ZipError::FileNotFound => format!("no array '{name}' in the archive"),
        e => format!("cannot read array '{name}' (corrupt or truncated archive?): {e}"),
    };
    format_error(path, msg)
}

/// An I/O error while reading array `name`, said in terms of the file.
fn io_read_error(path: &Path, name: &str, e: std::io::Error) -> Error {
    let msg = if e.kind() == std::io::ErrorKind::UnexpectedEof {
        format!("array '{name}' is truncated: {e}")
    } else {
        format!("cannot read array '{name}' (corrupt or truncated archive?): {e}")
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

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

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

    fn err_msg(r: Result<Dataset<'static>>) -> String {
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
        let read_per_position = |b: &[u8]| read_npz_bytes_as(b, Some(Targets::PerPosition));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let sequence = |compressed| {
            npz_bytes(compressed, |w| {
                w.add_array("X", &sample_x::<f64>(5)).unwrap();
                let y = Array2::from_shape_fn((5, 4), |(i, r)| ((i + r) % 3) as i64);
                w.add_array("y", &y).unwrap();
            })
        };
        let originals = [
            valid_npz(false),
            valid_npz(true),
            sequence(false),
            sequence(true),
        ];
        for round in 0..4000 {
            let orig = &originals[round % 4];
            let mut b = orig.clone();
            let truncated = round / 4 % 2 == 0;
            if truncated {
                b.truncate(rng.random_range(0..orig.len()));
            } else {
                for _ in 0..rng.random_range(1..8) {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
            }
            let out = std::panic::catch_unwind(|| read_npz_bytes(&b).err());
            let plain = out.unwrap_or_else(|_| panic!("panic on round {round}"));
            let out = std::panic::catch_unwind(|| read_per_position(&b).err());
            let seq = out.unwrap_or_else(|_| panic!("sequence reader panic on round {round}"));
            if truncated {
                assert!(plain.is_some(), "truncated file accepted on round {round}");
                assert!(seq.is_some(), "truncated file accepted on round {round}");
            }
        }
    }

    // -----------------------------------------------------------------------
    // Archives written member by member, to forge headers and sizes.
    // -----------------------------------------------------------------------

    /// A `.npy` file: a version-1.0 header for `dict` (padded as NumPy pads
    /// it) followed by `data`.
    fn npy(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut dict = dict.as_bytes().to_vec();
        while (10 + dict.len() + 1) % 64 != 0 {
            dict.push(b' ');
        }
        dict.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        out.extend_from_slice(&dict);
        out.extend_from_slice(data);
        out
    }

    fn header(descr: &str, fortran: bool, shape: &str) -> String {
        let f = if fortran { "True" } else { "False" };
        format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {shape}, }}")
    }

    fn f64_bytes(v: impl IntoIterator<Item = f64>) -> Vec<u8> {
        v.into_iter().flat_map(f64::to_le_bytes).collect()
    }

    /// An archive of the given members, stored or deflate-compressed.
    fn zip_of(compressed: bool, members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        use std::io::Write;
        let method = if compressed {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in members {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    /// X of shape (5, 4, 3) float64, as a `.npy` member.
    fn x_member() -> Vec<u8> {
        let x = sample_x::<f64>(5);
        npy(
            &header("<f8", false, "(5, 4, 3)"),
            &f64_bytes(x.iter().copied()),
        )
    }

    fn y_member() -> Vec<u8> {
        npy(
            &header("<f8", false, "(5,)"),
            &f64_bytes([1.0, 2.0, 3.0, 4.0, 5.0]),
        )
    }

    /// A deflate-compressed member whose header claims 2^40 elements (8 TiB
    /// of float64) is refused from its header, at once: an allocation of that
    /// size would abort the test process.
    #[test]
    fn compressed_forged_shape_is_refused_quickly() {
        for (compressed, descr) in [(true, "<f8"), (true, "|u1"), (false, "<f8")] {
            let forged = npy(&header(descr, false, "(1099511627776, 1, 1)"), &[0u8; 64]);
            let bytes = zip_of(compressed, &[("X.npy", forged), ("y.npy", y_member())]);
            let start = std::time::Instant::now();
            let e = read_npz_bytes(&bytes).unwrap_err();
            let took = start.elapsed();
            assert!(took.as_millis() < 500, "took {took:?}");
            assert!(matches!(e, Error::TooLarge(_)), "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains("<memory>") && msg.contains("'X'") && msg.contains("X.npy"),
                "{msg}"
            );
            assert!(msg.contains("1099511627776"), "{msg}");
            // The sequence reader shares the check.
            let e = read_npz_bytes_as(&bytes, Some(Targets::PerPosition)).unwrap_err();
            assert!(matches!(e, Error::TooLarge(_)), "{e}");
        }
        // A shape whose byte count overflows u64.
        let forged = npy(
            &header("<f8", false, "(4294967296, 4294967296, 2)"),
            &[0u8; 8],
        );
        let bytes = zip_of(true, &[("X.npy", forged), ("y.npy", y_member())]);
        let e = read_npz_bytes(&bytes).unwrap_err();
        assert!(e.to_string().contains("2^64"), "{e}");
    }

    /// The shape must need exactly the bytes the member holds after its header.
    #[test]
    fn header_shape_must_match_the_member_size() {
        for compressed in [false, true] {
            // Says 5 samples, holds 4.
            let x4 = sample_x::<f64>(4);
            let short = npy(
                &header("<f8", false, "(5, 4, 3)"),
                &f64_bytes(x4.iter().copied()),
            );
            let bytes = zip_of(compressed, &[("X.npy", short), ("y.npy", y_member())]);
            let e = read_npz_bytes(&bytes).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, Error::Format { .. }), "{msg}");
            assert!(
                msg.contains("'X' is truncated") && msg.contains("X.npy") && msg.contains("480"),
                "{msg}"
            );
            // Says 4 samples, holds 5.
            let x5 = sample_x::<f64>(5);
            let long = npy(
                &header("<f8", false, "(4, 4, 3)"),
                &f64_bytes(x5.iter().copied()),
            );
            let bytes = zip_of(compressed, &[("X.npy", long), ("y.npy", y_member())]);
            let msg = err_msg(read_npz_bytes(&bytes));
            assert!(msg.contains("96 bytes beyond"), "{msg}");
            // A header longer than the member.
            let mut cut = x_member();
            cut.truncate(40);
            let bytes = zip_of(compressed, &[("X.npy", cut), ("y.npy", y_member())]);
            let e = read_npz_bytes(&bytes).unwrap_err();
            assert!(matches!(e, Error::TooLarge(_)), "{e}");
            // Too short for any header, and not a .npy at all.
            for junk in [&b"\x93NUM"[..], &b"PK\x03\x04 not an npy file"[..]] {
                let bytes = zip_of(
                    compressed,
                    &[("X.npy", junk.to_vec()), ("y.npy", y_member())],
                );
                let msg = err_msg(read_npz_bytes(&bytes));
                assert!(msg.contains("invalid .npy header"), "{msg}");
            }
        }
    }

    /// Data cut short inside the archive: the stored data ends before the
    /// member's declared size, or the deflate stream is damaged.
    #[test]
    fn truncated_member_data_is_an_error() {
        // Stored: shorten the member's data inside the archive by moving the
        // rest of the archive up; the central directory still declares the
        // full size, so the reader must notice the missing bytes.
        let bytes = zip_of(false, &[("X.npy", x_member()), ("y.npy", y_member())]);
        let x = x_member();
        let at = find(&bytes, &x).unwrap();
        let mut cut = bytes[..at + x.len() - 8].to_vec();
        cut.extend_from_slice(&bytes[at + x.len()..]);
        assert!(read_npz_bytes(&cut).is_err());
        // Deflate: damage the compressed stream after the header.
        let bytes = zip_of(true, &[("X.npy", x_member()), ("y.npy", y_member())]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut refused = 0;
        for _ in 0..200 {
            let mut bad = bytes.clone();
            // Bytes 30.. are the local header's name, then the deflate data.
            let i = rng.random_range(40..90);
            bad[i] ^= 1 << rng.random_range(0..8);
            refused += usize::from(read_npz_bytes(&bad).is_err());
        }
        assert!(refused > 150, "{refused} of 200 damaged archives refused");
    }

    /// Compressed archives round-trip every target shape of both readers.
    #[test]
    fn compressed_round_trips_every_target_shape() {
        let x = sample_x::<f64>(5);
        let xs: Vec<f64> = x.iter().copied().collect();
        let y1 = Array1::from(vec![0.5, -1.0, 2.0, 3.0, 4.5]);
        let y2 = Array2::from_shape_fn((5, 2), |(i, l)| i as f64 - l as f64);
        let labels = Array1::from(vec![2i64, 0, 1, 1, 0]);
        type MemWriter = NpzWriter<Cursor<Vec<u8>>>;
        let file = |add: &dyn Fn(&mut MemWriter)| {
            npz_bytes(true, |w| {
                w.add_array("X", &x).unwrap();
                add(w);
            })
        };
        let ds = read_npz_bytes(&file(&|w| w.add_array("y", &y1).unwrap())).unwrap();
        assert_eq!(
            (ds.shape(), &ds.x[..], &ds.y),
            ((5, 4, 3, 1), &xs[..], &y1.to_vec())
        );
        let ds = read_npz_bytes(&file(&|w| w.add_array("y", &y2).unwrap())).unwrap();
        assert_eq!(ds.shape(), (5, 4, 3, 2));
        assert_eq!(ds.y, y2.iter().copied().collect::<Vec<_>>());
        let ds = read_npz_bytes(&file(&|w| w.add_array("y", &labels).unwrap())).unwrap();
        assert_eq!(ds.labels.as_deref(), Some(&[2, 0, 1, 1, 0][..]));
        // The sequence program: (N, n, c) and (N, n) floats, (N, n) labels.
        let read_per_position = |b: &[u8]| read_npz_bytes_as(b, Some(Targets::PerPosition));
        let y3 = Array3::from_shape_fn((5, 4, 2), |(i, r, l)| (i * 8 + r * 2 + l) as f64);
        let ds = read_per_position(&file(&|w| w.add_array("y", &y3).unwrap())).unwrap();
        assert_eq!(ds.shape(), (5, 4, 3, 2));
        assert_eq!(
            (&ds.x[..], &ds.y),
            (&xs[..], &y3.iter().copied().collect::<Vec<_>>())
        );
        let yn = Array2::from_shape_fn((5, 4), |(i, r)| (i + r) as f64 * 0.5);
        let ds = read_per_position(&file(&|w| w.add_array("y", &yn).unwrap())).unwrap();
        assert_eq!(ds.shape(), (5, 4, 3, 1));
        assert_eq!(ds.y, yn.iter().copied().collect::<Vec<_>>());
        let yl = Array2::from_shape_fn((5, 4), |(i, r)| ((i + r) % 3) as u16);
        let ds = read_per_position(&file(&|w| w.add_array("y", &yl).unwrap())).unwrap();
        assert_eq!(ds.shape(), (5, 4, 3, 3));
        let want: Vec<usize> = yl.iter().map(|&v| v as usize).collect();
        assert_eq!(ds.labels.as_deref(), Some(&want[..]));
    }

    /// Member names without `.npy`, big-endian types, Fortran order in a
    /// compressed member, and header versions 2.0 and 3.0.
    #[test]
    fn header_variants_are_read() {
        let x = sample_x::<f64>(2);
        let c: Vec<f64> = x.iter().copied().collect();
        // Big-endian X; y as big-endian int32 labels; names without .npy.
        let xbe: Vec<u8> = c.iter().flat_map(|v| v.to_be_bytes()).collect();
        let ybe: Vec<u8> = [1i32, 0].iter().flat_map(|v| v.to_be_bytes()).collect();
        let bytes = zip_of(
            true,
            &[
                ("X", npy(&header(">f8", false, "(2, 4, 3)"), &xbe)),
                ("y", npy(&header(">i4", false, "(2,)"), &ybe)),
            ],
        );
        let ds = read_npz_bytes(&bytes).unwrap();
        assert_eq!(ds.x, c);
        assert_eq!(ds.labels.as_deref(), Some(&[1, 0][..]));
        // Fortran order: column-major bytes, read back in logical order.
        let xf = f64_bytes(x.t().iter().copied());
        let bytes = zip_of(
            true,
            &[
                ("X.npy", npy(&header("<f8", true, "(2, 4, 3)"), &xf)),
                (
                    "y.npy",
                    npy(&header("<f4", false, "(2,)"), &[0, 0, 128, 63, 0, 0, 0, 64]),
                ),
            ],
        );
        let ds = read_npz_bytes(&bytes).unwrap();
        assert_eq!(ds.x, c);
        assert_eq!(ds.y, vec![1.0, 2.0]);
        // Versions 2.0 and 3.0: a 4-byte header length.
        for major in [2u8, 3] {
            let v1 = npy(
                &header("<f8", false, "(2, 4, 3)"),
                &f64_bytes(c.iter().copied()),
            );
            let mut v = b"\x93NUMPY".to_vec();
            v.extend_from_slice(&[major, 0]);
            v.extend_from_slice(&u32::from(u16::from_le_bytes([v1[8], v1[9]])).to_le_bytes());
            v.extend_from_slice(&v1[10..]);
            let y = npy(&header("<f8", false, "(2,)"), &f64_bytes([1.0, 2.0]));
            let ds = read_npz_bytes(&zip_of(false, &[("X.npy", v), ("y.npy", y)])).unwrap();
            assert_eq!(ds.x, c);
        }
        // Version 4.0 does not exist.
        let mut v = x_member();
        v[6] = 4;
        let bytes = zip_of(false, &[("X.npy", v), ("y.npy", y_member())]);
        assert!(err_msg(read_npz_bytes(&bytes)).contains("version 4.0"));
    }

    /// Headers that are not a plain array's: unknown keys, missing keys,
    /// bad values, deep nesting, unsupported types. Refused at once.
    #[test]
    fn strict_headers() {
        let data = f64_bytes(sample_x::<f64>(5).iter().copied());
        let deep = format!(
            "{{'descr': '<f8', 'fortran_order': False, 'shape': (5, 4, 3), 'a': {}1{}}}",
            "{".repeat(40),
            "}".repeat(40)
        );
        let wide = format!(
            "{{'descr': '<f8', 'fortran_order': False, 'shape': (5, 4, 3), 'a': [{}]}}",
            "{{1}},".repeat(1600)
        );
        let long = format!(
            "{{'descr': '<f8', 'fortran_order': False, 'shape': (5, 4, 3), 'a': [{}]}}",
            "{{1}},".repeat(9000)
        );
        let cases: Vec<(String, &str)> = vec![
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (5, 4, 3), 'x': 1}".into(),
                "invalid .npy header",
            ),
            (
                "{'descr': '<f8', 'shape': (5, 4, 3)}".into(),
                "fortran_order",
            ),
            (
                "{'descr': '<f8', 'fortran_order': 0, 'shape': (5, 4, 3)}".into(),
                "invalid .npy header",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (5, -4, 3)}".into(),
                "invalid .npy header",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (5, 4.0, 3)}".into(),
                "invalid .npy header",
            ),
            (
                "{'descr': '<c16', 'fortran_order': False, 'shape': (5, 4, 3)}".into(),
                "unsupported dtype",
            ),
            (
                "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (5, 4, 3)}".into(),
                "unsupported dtype",
            ),
            ("['descr', '<f8']".into(), "invalid .npy header"),
            (deep, "nest"),
            (wide, "invalid .npy header"),
            (long, "above the limit of 10000"),
        ];
        for (dict, want) in cases {
            let bytes = zip_of(true, &[("X.npy", npy(&dict, &data)), ("y.npy", y_member())]);
            let start = std::time::Instant::now();
            let msg = err_msg(read_npz_bytes(&bytes));
            assert!(
                start.elapsed().as_millis() < 2000,
                "{dict:.80}: {:?}",
                start.elapsed()
            );
            assert!(
                msg.contains(want) && msg.contains("'X'"),
                "{dict:.80}: {msg}"
            );
        }
    }
}
