//! Every composed shader parses and validates with naga with only the adapter features of its
//! own variant, and its meta uniform (@group(1) @binding(0)) has the size, member names and
//! offsets of the `#[repr(C)]` struct the op fills.

use wgpu::naga;
use wgpu::naga::valid::{Capabilities, ShaderStages, SubgroupOperationSet, ValidationFlags, Validator};

use super::{attention, conv2d, depthwise, elementwise, grad, linear, norm, pool, resample, resize, softmax, timestep, winograd, Layout};
use crate::gpu::Shader;

const OPS: &[(&[Shader], Layout)] = &[
    (linear::SHADERS, linear::META_LAYOUT),
    (conv2d::SHADERS, conv2d::META_LAYOUT),
    (depthwise::SHADERS, depthwise::META_LAYOUT),
    (pool::SHADERS, pool::META_LAYOUT),
    (attention::SHADERS, attention::META_LAYOUT),
    (elementwise::SHADERS, elementwise::META_LAYOUT),
    (norm::SHADERS, norm::META_LAYOUT),
    (resample::SHADERS, resample::META_LAYOUT),
    (softmax::SHADERS, softmax::META_LAYOUT),
    (timestep::SHADERS, timestep::META_LAYOUT),
    (grad::SHADERS, grad::META_LAYOUT),
    (resize::SHADERS, resize::META_LAYOUT),
    (winograd::SHADERS, winograd::META_LAYOUT),
];

/// The features a kernel file may use: SHADER_F16 for `*_f16.wgsl`, 8-lane subgroups and
/// SHADER_INT64 for `*_sg.wgsl` (Variant::needs), none for the others.
fn capabilities(shader: &Shader) -> Capabilities {
    let features = Capabilities::SHADER_FLOAT16 | Capabilities::SUBGROUP | Capabilities::SUBGROUP_BARRIER | Capabilities::SHADER_INT64;
    let base = Capabilities::all() - features - Capabilities::SHADER_INT64_ATOMIC_MIN_MAX - Capabilities::SHADER_INT64_ATOMIC_ALL_OPS;
    if shader.name.ends_with("_f16.wgsl") {
        base | Capabilities::SHADER_FLOAT16
    } else if shader.name.ends_with("_sg.wgsl") {
        base | Capabilities::SUBGROUP | Capabilities::SHADER_INT64
    } else {
        base
    }
}

fn module(shader: &Shader) -> naga::Module {
    let source = shader.source();
    // An enable directive alone passes validation without the capability.
    assert_eq!(source.contains("enable f16;"), shader.name.ends_with("_f16.wgsl"), "{}: `enable f16;` belongs to the *_f16 kernels only", shader.name);
    let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(&source)));
    let mut validator = Validator::new(ValidationFlags::all(), capabilities(shader));
    validator.subgroup_stages(ShaderStages::COMPUTE).subgroup_operations(SubgroupOperationSet::all());
    if let Err(e) = validator.validate(&module) {
        panic!("{}: {}", shader.name, e.emit_to_string(&source));
    }
    module
}

#[test]
fn composed_shaders_validate_with_their_variants_features_only() {
    for (shaders, _) in OPS {
        for shader in *shaders {
            module(shader);
        }
    }
}

#[test]
fn meta_uniforms_match_their_rust_mirrors() {
    for (shaders, layout) in OPS {
        for shader in *shaders {
            let module = module(shader);
            let binding = naga::ResourceBinding { group: 1, binding: 0 };
            let (_, var) = module.global_variables.iter().find(|(_, v)| v.binding == Some(binding)).unwrap_or_else(|| panic!("{}: nothing at @group(1) @binding(0)", shader.name));
            assert_eq!(var.space, naga::AddressSpace::Uniform, "{}: @group(1) @binding(0) is not a uniform", shader.name);
            let ty = &module.types[var.ty];
            let naga::TypeInner::Struct { members, span } = &ty.inner else { panic!("{}: the uniform is not a struct", shader.name) };
            let wgsl: Vec<(&str, usize)> = members.iter().map(|m| (m.name.as_deref().unwrap_or("?"), m.offset as usize)).collect();
            let rust: Vec<(&str, usize)> = layout.fields.to_vec();
            assert_eq!(wgsl, rust, "{}: members (name, offset) of WGSL {} vs the Rust mirror", shader.name, ty.name.as_deref().unwrap_or("?"));
            assert_eq!(*span as usize, layout.size, "{}: size of WGSL {} vs the Rust mirror", shader.name, ty.name.as_deref().unwrap_or("?"));
        }
    }
}
