// First part of the kernels that need SHADER_F16: WGSL wants enable directives before any
// declaration.
enable f16;
