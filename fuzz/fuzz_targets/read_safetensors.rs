//! Any bytes given to the `.safetensors` reader give a data set or an error,
//! never a panic. `read_safetensors_bytes` is the code path of
//! `read_safetensors` after the file read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ds) = convexformer::data::tensors::read_safetensors_bytes(data) {
        ds.validate().expect("the reader returned an invalid data set");
    }
});
