// The meta uniform of conv2d.wgsl, conv2d_f16.wgsl and conv2d_sg.wgsl (host/src/ops/conv2d.rs
// mirrors it as `Params`).
struct Params {
    batch: u32,
    h: u32,
    w: u32,
    cin: u32,
    ho: u32,
    wo: u32,
    cout: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    act: u32,        // 0 none, 1 ReLU, 2 SiLU, 3 ReLU6
    has_bias: u32,
    has_res: u32,    // 1: add res (B, Ho, Wo, Cout) before the activation
    _pad1: u32,
}

@group(1) @binding(0) var<uniform> params: Params;

// The fused activation (params.act).
fn activate(v: f32) -> f32 {
    switch params.act {
        case 1u: { return max(v, 0.0); }
        case 2u: { return v / (1.0 + exp(-v)); }
        case 3u: { return clamp(v, 0.0, 6.0); }
        default: { return v; }
    }
}
