// f32s read as u64 (SHADER_INT64; the *_sg kernels): 64 bits per lane per step of lavapipe's
// per-lane load loop, half the steps of 32-bit loads.

// The two f32 in the low and high halves of v.
fn f2(v: u64) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(u32(v & 0xfffffffflu)), bitcast<f32>(u32(v >> 32u)));
}
