// Kernels with four elements per invocation over a 2D grid of 64-wide workgroups
// (elementwise.wgsl, resample.wgsl; the host's grid_flat).

// Flat index of the first of this invocation's four elements (2D grid for large tensors).
fn first(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return (gid.y * groups.x * 64u + gid.x) * 4u;
}
