// Reading a kernel's x (array<vec4<f32>>) and w (array<vec2<u32>>: f32, or with W_F16 two f16
// per u32, unpacked with unpack2x16float, which needs no SHADER_F16), as declared by the
// kernel file (linear.wgsl, conv2d.wgsl).

override W_F16: bool = false;

// Scalar element i of x.
fn x_at(i: u32) -> f32 {
    return x[i >> 2u][i & 3u];
}

// Scalar element i of W.
fn w_at(i: u32) -> f32 {
    if W_F16 {
        let word = w[i >> 2u][(i >> 1u) & 1u];
        let pair = unpack2x16float(word);
        return select(pair.x, pair.y, (i & 1u) == 1u);
    }
    return bitcast<f32>(w[i >> 1u][i & 1u]);
}

// Elements 4g .. 4g + 4 of W.
fn w4(g: u32) -> vec4<f32> {
    if W_F16 {
        let v = w[g];
        return vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y));
    }
    return vec4<f32>(bitcast<vec2<f32>>(w[2u * g]), bitcast<vec2<f32>>(w[2u * g + 1u]));
}
