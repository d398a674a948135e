// Operands of the register-blocked subgroup kernels (linear_sg.wgsl, conv2d_sg.wgsl), after
// u64.wgsl: x (array<vec2<u64>>) and w (array<u64>: f32, or with W_F16 four f16 per u64) as
// declared by the kernel file, and the multiply-add of 4 x 4 values.

override W_F16: bool = false;

// Elements 4g .. 4g + 4 of x (conv2d: g counts groups of 4 channels over the whole tensor).
fn x4(g: u32) -> vec4<f32> {
    let v = x[g];
    return vec4<f32>(f2(v.x), f2(v.y));
}

// Elements 4g .. 4g + 4 of W (f16: one u64 holds all four).
fn w4(g: u32) -> vec4<f32> {
    if W_F16 {
        let v = w[g];
        return vec4<f32>(unpack2x16float(u32(v & 0xfffffffflu)), unpack2x16float(u32(v >> 32u)));
    }
    return vec4<f32>(f2(w[2u * g]), f2(w[2u * g + 1u]));
}

// acc (4 outputs of one row of x: output columns, or channels of one pixel) += that row's 4
// values along K (input channels) times the lane's 4 weight rows, given transposed: c_t holds
// element t of each row. Chained fma rather than dot products: in lavapipe's SoA code this is
// 16 multiply-adds and no horizontal work.
fn mac4(acc: vec4<f32>, xv: vec4<f32>, c0: vec4<f32>, c1: vec4<f32>, c2: vec4<f32>, c3: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(xv.w), c3, fma(vec4<f32>(xv.z), c2, fma(vec4<f32>(xv.y), c1, fma(vec4<f32>(xv.x), c0, acc))));
}
