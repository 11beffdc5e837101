//! Any bytes given to the `.npz` reader give a data set or an error, never a
//! panic. `read_npz_bytes` is the code path of `read_npz` after the file read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ds) = convexformer::data::npz::read_npz_bytes(data) {
        // What the reader accepts is a valid data set.
        ds.validate().expect("the reader returned an invalid data set");
    }
});
