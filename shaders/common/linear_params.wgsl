// The meta uniform of linear.wgsl, linear_f16.wgsl and linear_sg.wgsl (host/src/ops/linear.rs
// mirrors it as `Meta`).
struct Params {
    batch: u32,      // B
    m: u32,          // rows of x
    n: u32,          // outputs written by this dispatch
    k: u32,          // inputs
    x_batch: u32,    // elements between batches of x
    w_batch: u32,    // elements between batches of W (0: one W for all batches)
    y_batch: u32,    // elements between batches of y
    has_bias: u32,
    w_offset: u32,   // offset of W inside its binding: in elements (linear_tiled, linear_tiled_f16), in vec4 groups (linear_cpu, linear_sg)
    n_offset: u32,   // first output column of this dispatch (split weights)
    n_total: u32,    // row length of y
    _pad: u32,
}

@group(1) @binding(0) var<uniform> params: Params;
