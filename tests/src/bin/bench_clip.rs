//! Benchmark of the CLIP text encoder (issue: CLIP text encoder), not a test: the full-size
//! SD v1 text encoder (123 M parameters, random f16 weights made here) on the adapter, beside
//! PyTorch CPU (transformers' CLIPTextModel, random weights, 2 threads) in the same run.
//!
//! `cargo run --release -p percept-tests --bin bench-clip [-- --write BENCHMARKS.md]`

use std::process::Command;
use std::time::Instant;

use anyhow::Result;
use percept::gpu::{DType, Gpu};
use percept::nn::clip::{ClipConfig, ClipTextModel};
use percept::nn::tokenizer::Tokenizer;
use percept_tests::{publish, today, machine};
use percept_tests::{repo_root, Rng};
use safetensors::tensor::TensorView;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    percept_tests::check_args(&args[1..], "cargo run --release -p percept-tests --bin bench-clip [-- --write BENCHMARKS.md]", &[], &["--write"])?;
    let c = ClipConfig::sd_v1();
    let dir = std::env::temp_dir().join(format!("percept-bench-clip-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    eprintln!("making random SD v1 text encoder weights ...");
    let mut rng = Rng(3);
    let (h, m) = (c.hidden, c.intermediate);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
        let n: usize = shape.iter().product();
        let bytes: Vec<u8> = (0..n).flat_map(|_| half::f16::from_f32(offset + rng.uniform(scale)).to_le_bytes()).collect();
        tensors.push((name, shape, bytes));
    };
    add("embeddings.token_embedding.weight".into(), vec![c.vocab, h], 0.02, 0.0);
    add("embeddings.position_embedding.weight".into(), vec![c.max_positions, h], 0.02, 0.0);
    for i in 0..c.layers {
        let p = format!("encoder.layers.{i}");
        for (n, o, inp) in [("self_attn.q_proj", h, h), ("self_attn.k_proj", h, h), ("self_attn.v_proj", h, h), ("self_attn.out_proj", h, h), ("mlp.fc1", m, h), ("mlp.fc2", h, m)] {
            add(format!("{p}.{n}.weight"), vec![o, inp], 0.03, 0.0);
            add(format!("{p}.{n}.bias"), vec![o], 0.01, 0.0);
        }
        for n in ["layer_norm1", "layer_norm2"] {
            add(format!("{p}.{n}.weight"), vec![h], 0.1, 1.0);
            add(format!("{p}.{n}.bias"), vec![h], 0.01, 0.0);
        }
    }
    add("final_layer_norm.weight".into(), vec![h], 0.1, 1.0);
    add("final_layer_norm.bias".into(), vec![h], 0.01, 0.0);
    let params: usize = tensors.iter().map(|t| t.1.iter().product::<usize>()).sum();
    let views: Vec<(String, TensorView<'_>)> = tensors.iter().map(|(n, s, b)| (n.clone(), TensorView::new(safetensors::Dtype::F16, s.clone(), b).expect("consistent"))).collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors"))?;
    std::fs::write(
        dir.join("config.json"),
        format!(
            r#"{{"hidden_size": {h}, "intermediate_size": {m}, "num_attention_heads": {}, "num_hidden_layers": {}, "max_position_embeddings": {}, "vocab_size": {}, "layer_norm_eps": 1e-5, "hidden_act": "quick_gelu"}}"#,
            c.heads, c.layers, c.max_positions, c.vocab
        ),
    )?;
    let gpu = Gpu::new()?;
    let model = ClipTextModel::load(&gpu, &dir, DType::F16)?;
    let tok = Tokenizer::load(&repo_root().join("weights/clip-tokenizer"))?;
    let ids = [tok.encode("a photograph of an astronaut riding a horse"), tok.encode("")];
    let mut times = Vec::new();
    for batch in [1usize, 2] {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            let mut enc = gpu.encoder();
            let y = model.forward(&mut enc, &ids[..batch])?;
            drop(enc);
            let _ = y.to_vec(&gpu)?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        times.push(best);
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("PyTorch ...");
    let script = "import time, torch\nfrom transformers import CLIPTextConfig, CLIPTextModel\ntorch.set_num_threads(2)\nm=CLIPTextModel(CLIPTextConfig(vocab_size=49408,hidden_size=768,intermediate_size=3072,num_attention_heads=12,num_hidden_layers=12,max_position_embeddings=77,hidden_act='quick_gelu')).eval()\nout=[]\nfor b in (1,2):\n ids=torch.randint(0,49408,(b,77))\n with torch.no_grad():\n  m(input_ids=ids)\n  best=1e9\n  for _ in range(3):\n   t=time.perf_counter(); m(input_ids=ids); best=min(best,time.perf_counter()-t)\n out.append(best)\nprint(*out)";
    let torch = Command::new("python3").args(["-c", script]).output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|s| s.parse::<f64>().ok()).collect::<Vec<_>>());
    let date = today();
    let mut report = format!(
        "## CLIP text encoder, SD v1 size ({date})\n\nMachine: {}. Adapter: {}. {:.1} M parameters, random f16 weights; 77 tokens; best of 3 after a warm-up, read-back included.\nCommand: `cargo run --release -p percept-tests --bin bench-clip`.\n\n| batch | percept | PyTorch CPU (2 threads, f32) | ratio percept / PyTorch |\n|---|---|---|---|\n",
        machine(),
        gpu.describe(),
        params as f64 / 1e6
    );
    for (i, b) in [1, 2].iter().enumerate() {
        let t = torch.as_ref().and_then(|v| v.get(i).copied());
        report += &format!("| {b} | {:.2} s | {} | {} |\n", times[i], t.map_or("-".into(), |t| format!("{t:.2} s")), t.map_or("-".into(), |t| format!("{:.1}", times[i] / t)));
    }
    publish(&report, &args)
}
