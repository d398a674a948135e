// The meta uniform of attention.wgsl and attention_sg.wgsl (host/src/ops/attention.rs mirrors
// it as `Params`).
struct Params {
    lq: u32,
    lk: u32,
    heads: u32,
    d: u32,
    scale: f32,
    causal: u32,   // 1: query i sees keys j <= i (CLIP's text encoder)
    _pad0: u32,
    _pad1: u32,
}

@group(1) @binding(0) var<uniform> params: Params;
