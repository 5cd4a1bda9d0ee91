//! The ggml tensor-type table, read from the linked ggml itself so it never drifts.
//!
//! One of bear-models' three modules with `unsafe`: two pure lookup functions of ggml,
//! called only with a type id already checked to be in range.

#![allow(unsafe_code)]

use std::ffi::CStr;

/// Elements per block and bytes per block of ggml type `ty`, or `None` for an unknown or
/// removed type.
pub(crate) fn type_layout(ty: u32) -> Option<(u64, u64)> {
    if ty >= llama_cpp_sys_2::GGML_TYPE_COUNT {
        return None;
    }
    // SAFETY: `ty` is below GGML_TYPE_COUNT, so both calls index ggml's static type table.
    let (block, size) = unsafe {
        (
            llama_cpp_sys_2::ggml_blck_size(ty as llama_cpp_sys_2::ggml_type),
            llama_cpp_sys_2::ggml_type_size(ty as llama_cpp_sys_2::ggml_type),
        )
    };
    // Removed types (Q4_2, Q4_3, ...) keep a slot with a zero block size.
    (block > 0 && size > 0).then_some((block as u64, size as u64))
}

/// ggml's name for type `ty`, such as `q4_1`.
pub(crate) fn type_name(ty: u32) -> String {
    if type_layout(ty).is_none() {
        return format!("type{ty}");
    }
    // SAFETY: `ty` is a valid type (checked above); ggml returns a static C string.
    let ptr = unsafe { llama_cpp_sys_2::ggml_type_name(ty as llama_cpp_sys_2::ggml_type) };
    if ptr.is_null() {
        return format!("type{ty}");
    }
    // SAFETY: non-null pointers from ggml_type_name point to static NUL-terminated strings.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}
