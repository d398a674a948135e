// Kernels with four elements per invocation over a 2D grid of 64-wide workgroups
// (elementwise.wgsl, resample.wgsl, depthwise.wgsl, pool.wgsl; the host's grid_flat).

// Flat index of the first of this invocation's four elements (2D grid for large tensors).
fn first(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return (gid.y * groups.x * 64u + gid.x) * 4u;
}

// Where flat index `i` of an NHWC output (B, ho, wo, c) lies: (b, oy, ox, channel).
fn nhwc_at(i: u32, ho: u32, wo: u32, c: u32) -> vec4<u32> {
    let p = i / c;
    return vec4<u32>(p / (wo * ho), (p / wo) % ho, p % wo, i % c);
}
