// The implicit im2col matrix of the tiled conv kernels (conv2d.wgsl, conv2d_f16.wgsl), after
// conv2d_params.wgsl: x (array<vec4<f32>>, NHWC) as declared by the kernel file.

// Input element for output pixel m and column k of the implicit im2col matrix (0 in padding).
fn im2col(m: u32, k: u32) -> f32 {
    let ci = k % params.cin;
    let tap = k / params.cin;
    let kx = tap % params.kw;
    let ky = tap / params.kw;
    let ox = m % params.wo;
    let oy = (m / params.wo) % params.ho;
    let b = m / (params.wo * params.ho);
    let iy = i32(oy * params.stride + ky) - i32(params.pad_top);
    let ix = i32(ox * params.stride + kx) - i32(params.pad_left);
    if iy < 0 || ix < 0 || iy >= i32(params.h) || ix >= i32(params.w) {
        return 0.0;
    }
    let i = ((b * params.h + u32(iy)) * params.w + u32(ix)) * params.cin + ci;
    return x[i >> 2u][i & 3u];
}
