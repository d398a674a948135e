// Sinusoidal timestep embedding (diffusers get_timestep_embedding):
//   f_j = exp(-ln(max_period) * j / (half - shift)), j < half = dim / 2
//   y[b] = [cos(t f), sin(t f)] when flip_sin_to_cos (SD v1), else [sin(t f), cos(t f)]

struct Params {
    batch: u32,
    dim: u32,
    flip: u32,
    _pad0: u32,
    shift: f32,
    max_period: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> t: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(1) @binding(0) var<uniform> params: Params;

@compute @workgroup_size(64, 1, 1)
fn timestep(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= params.batch * params.dim {
        return;
    }
    let b = i / params.dim;
    let c = i % params.dim;
    let half = params.dim / 2u;
    if c >= 2u * half {
        y[i] = 0.0;   // odd dim: zero pad, as diffusers
        return;
    }
    let j = c % half;
    let f = exp(-log(params.max_period) * f32(j) / (f32(half) - params.shift));
    let a = t[b] * f;
    let first = c < half;
    // first half: cos if flipped else sin
    y[i] = select(select(cos(a), sin(a), first), select(sin(a), cos(a), first), params.flip == 1u);
}
