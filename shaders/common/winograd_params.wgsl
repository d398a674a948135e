// The meta uniform of winograd_in.wgsl and winograd_out.wgsl (host/src/ops/winograd.rs mirrors
// it as `Params`), and the 4-vector helpers both use.
struct Params {
    h: u32,          // image height and width (stride 1, padding 1: the output's too)
    w: u32,
    c4: u32,         // channels / 4 of the tensor the kernel reads (in) or writes (out)
    th: u32,         // tile rows per image in this dispatch (of ceil(h / 2)), from row ty0
    tw: u32,         // tiles per row: ceil(w / 2)
    tiles: u32,      // tiles of this dispatch: images * th * tw
    act: u32,        // 0 none, 1 ReLU, 2 SiLU, 3 ReLU6
    has_bias: u32,
    has_res: u32,    // out: add the residual before the activation
    ty0: u32,        // first tile row of this dispatch
    _pad1: u32,
    _pad2: u32,
}

@group(1) @binding(0) var<uniform> params: Params;

// Four vec4s: a row (or column) of a 4 x 4 tile, for 4 channels.
struct Q {
    a: vec4<f32>,
    b: vec4<f32>,
    c: vec4<f32>,
    d: vec4<f32>,
}

// One invocation per (tile, 4 channels), over a 2D grid of 64-wide workgroups (grid_flat).
fn flat(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}
