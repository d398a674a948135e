// The meta uniform of depthwise.wgsl and depthwise_vec4.wgsl (host/src/ops/depthwise.rs
// mirrors it as `Meta`).
struct Params {
    batch: u32,
    h: u32,
    w: u32,
    c: u32,
    ho: u32,
    wo: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    act: u32,        // 0 none, 1 ReLU, 2 SiLU, 3 ReLU6
    has_bias: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(1) @binding(0) var<uniform> params: Params;
