//! Shared helpers of percept's integration tests and benchmarks: seeded random decoders, and
//! building and running the Cortex-M4 firmware (firmware/) under qemu-system-arm.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use percept::fit::{DecoderFile, DecoderWeights};
use percept_core::Target;

/// SplitMix64: a small seeded generator, the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-scale, scale).
    pub fn uniform(&mut self, scale: f32) -> f32 {
        (((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
    }
    /// `n` uniform values in [-scale, scale).
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(scale)).collect()
    }
}

/// A random decoder with V voxels and the given target shape; low-rank when `rank` is given.
pub fn random_decoder(voxels: usize, target_shape: &[usize], rank: Option<usize>, seed: u64) -> DecoderFile {
    let mut r = Rng(seed);
    let l: usize = target_shape.iter().product();
    let scale = 1.0 / (voxels as f32).sqrt();
    let weights = match rank {
        None => DecoderWeights::Dense(r.vec(l * voxels, scale)),
        Some(k) => DecoderWeights::LowRank { u: r.vec(l * k, 1.0), vt: r.vec(k * voxels, scale), rank: k },
    };
    DecoderFile {
        features: None,
        region: "early_visual".into(),
        target: if rank.is_some() { Target::C } else { Target::Z },
        target_shape: target_shape.to_vec(),
        voxels,
        weights,
        bias: r.vec(l, 0.5),
        voxel_mean: r.vec(voxels, 1.0),
        voxel_std: (0..voxels).map(|_| 0.5 + r.uniform(0.4).abs()).collect(),
        settings: vec![("note".into(), "random weights for tests".into())],
    }
}

/// FNV-1a over the little-endian bits of `values`; the firmware prints the same.
pub fn fnv1a(values: &[f32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Sizes of the firmware fixture; they must match the constants in firmware/qemu/src/main.rs.
pub mod fw {
    /// Voxels of the dense and low-rank decoders (even, so rows are word-aligned).
    pub const V: usize = 2000;
    /// Outputs of the dense decoder.
    pub const L: usize = 256;
    /// Outputs of the low-rank decoder.
    pub const L2: usize = 1024;
    /// Rank of the low-rank decoder.
    pub const R2: usize = 8;
    /// Voxels of the odd-sized decoder (rows not word-aligned: the portable path on the M4).
    pub const V3: usize = 1999;
    /// Outputs of the odd-sized decoder.
    pub const L3: usize = 33;
    /// Outputs of the sparse decoder (V voxels).
    pub const L4: usize = 200;
    /// Voxels per output of the sparse decoder.
    pub const K4: usize = 100;
}

/// The sparse decoder of the firmware fixture: V -> L4, K4 seeded random voxels per output.
pub fn sparse_fixture() -> DecoderFile {
    let mut r = Rng(5);
    let mut file = random_decoder(fw::V, &[fw::L4], None, 5);
    let index = (0..fw::L4 * fw::K4).map(|_| (r.next_u64() % fw::V as u64) as u32).collect();
    file.weights = percept::io::decoder::DecoderWeights::Sparse { index, weight: r.vec(fw::L4 * fw::K4, 0.3), k: fw::K4 };
    file.target = percept_core::Target::Features;
    file
}

/// The three decoders and the input volume of the firmware fixture.
pub fn firmware_fixture() -> (DecoderFile, DecoderFile, DecoderFile, Vec<f32>) {
    let dense = random_decoder(fw::V, &[fw::L], None, 1);
    let low = random_decoder(fw::V, &[fw::L2], Some(fw::R2), 2);
    let odd = random_decoder(fw::V3, &[fw::L3], None, 3);
    let x = Rng(4).vec(fw::V, 2.0);
    (dense, low, odd, x)
}

/// Writes the fixture into `dir` for the firmware build (PERCEPT_FW_DIR).
pub fn write_firmware_fixture(dir: &Path) -> Result<()> {
    let (dense, low, odd, x) = firmware_fixture();
    std::fs::create_dir_all(dir)?;
    dense.save(&dir.join("dense.safetensors"), true)?;
    low.save(&dir.join("lowrank.safetensors"), true)?;
    odd.save(&dir.join("odd.safetensors"), true)?;
    sparse_fixture().save(&dir.join("sparse.safetensors"), true)?;
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("x.bin"), bytes)?;
    Ok(())
}

/// Builds the firmware workspace (release) with the fixture in `fixture`; returns the path of
/// the QEMU image. The build also links `nopanic`, which fails if percept-core can panic.
pub fn build_firmware(fixture: &Path) -> Result<PathBuf> {
    let dir = repo_root().join("firmware");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--release", "--target-dir"])
        .arg(dir.join("target"))
        .env("PERCEPT_FW_DIR", fixture)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .context("running cargo for the firmware")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("percept_core_panic_is_reachable") {
            bail!("a panic is reachable from percept-core's public API (nopanic failed to link):\n{err}");
        }
        if err.contains("thumbv7em-none-eabihf") && err.contains("target may not be installed") {
            bail!("the thumbv7em-none-eabihf target is missing: rustup target add thumbv7em-none-eabihf\n{err}");
        }
        bail!("firmware build failed:\n{err}");
    }
    Ok(dir.join("target/thumbv7em-none-eabihf/release/percept-qemu"))
}

/// Builds the C static library (firmware/staticlib, release) for `target`; returns the path of
/// `libpercept_core_c.a`.
pub fn build_staticlib(target: &str) -> Result<PathBuf> {
    let dir = repo_root().join("firmware");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--release", "-p", "percept-core-c", "--target", target, "--target-dir"])
        .arg(dir.join("target"))
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .context("running cargo for the staticlib")?;
    if !out.status.success() {
        bail!("staticlib for {target}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(dir.join(format!("target/{target}/release/libpercept_core_c.a")))
}

/// Compiles firmware/staticlib/examples/decode.c with `$CC` (or `cc`) against
/// include/percept_core.h and the host staticlib `lib`; returns the path of the program.
pub fn build_c_example(lib: &Path, out_dir: &Path) -> Result<PathBuf> {
    let dir = repo_root().join("firmware/staticlib");
    let exe = out_dir.join("percept-decode-c");
    std::fs::create_dir_all(out_dir)?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(dir.join("include"))
        .arg(dir.join("examples/decode.c"))
        .arg(lib)
        .arg("-lm")
        .arg("-o")
        .arg(&exe)
        .output()
        .with_context(|| format!("running {cc}"))?;
    if !out.status.success() {
        bail!("{cc} decode.c failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(exe)
}

/// Runs a firmware image under qemu-system-arm (Cortex-M4, semihosting, `-icount shift=0`)
/// and returns what it printed.
pub fn run_qemu(image: &Path) -> Result<String> {
    let mut child = Command::new("qemu-system-arm")
        .args(["-machine", "mps2-an386", "-cpu", "cortex-m4", "-semihosting-config", "enable=on,target=native"])
        .args(["-nographic", "-icount", "shift=0", "-monitor", "none", "-serial", "none", "-kernel"])
        .arg(image)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-arm (apt-get install qemu-system-arm)")?;
    let start = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(300) {
            child.kill()?;
            bail!("qemu did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("firmware failed ({}):\n{text}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(text)
}

/// The value after `key ` on the line that starts with `key`.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
}

/// `name=value` pairs of the firmware's `ticks` line.
pub fn ticks(text: &str, name: &str) -> Option<u64> {
    field(text, "ticks")?.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// Today's date as YYYY-MM-DD (for benchmark reports).
pub fn today() -> String {
    Command::new("date").arg("+%Y-%m-%d").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

/// The 1-minute load average, as the kernel reports it (how busy the machine was; for
/// benchmark reports).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next().map(str::to_string)).unwrap_or_else(|| "unknown".into())
}

/// The CPU model and core count (for benchmark reports).
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpu}, {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0))
}

/// Checks a benchmark's command line (`args` without the program name) before any work: `-h`
/// or `--help` prints `usage` and exits; anything that is not one of `flags` or one of `valued`
/// followed by its value is an error that names it and shows `usage`. A benchmark of a quarter
/// of an hour must not start on a mistyped flag.
pub fn check_args(args: &[String], usage: &str, flags: &[&str], valued: &[&str]) -> Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{usage}");
        std::process::exit(0);
    }
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if valued.contains(&a) {
            anyhow::ensure!(i + 1 < args.len() && !args[i + 1].starts_with("--"), "{a} needs a value\n\nusage: {usage}");
            i += 2;
        } else {
            anyhow::ensure!(flags.contains(&a), "unknown argument {a:?}\n\nusage: {usage}");
            i += 1;
        }
    }
    Ok(())
}

/// Prints a benchmark report and, with `--write FILE` among `args`, appends it to FILE.
pub fn publish(report: &str, args: &[String]) -> Result<()> {
    use std::io::Write;
    print!("{report}");
    if let Some(path) = args.iter().position(|a| a == "--write").and_then(|i| args.get(i + 1)) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("opening {path}"))?;
        writeln!(f, "\n{report}")?;
        eprintln!("appended to {path}");
    }
    Ok(())
}

/// The process's resident memory now and its peak since the start or the last
/// [`reset_peak`] (VmRSS and VmHWM of /proc/self/status), in bytes; None where that file is
/// missing (not Linux).
pub fn memory() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = |key: &str| s.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).map(|k| k * 1024);
    Some((kb("VmRSS:")?, kb("VmHWM:")?))
}

/// Resets the peak resident memory (VmHWM) to the current one (Linux's `clear_refs` 5), so
/// that [`memory`] reports the peak of a phase; false where the kernel refuses.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::check_args;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn benchmark_arguments_are_checked_before_any_work() {
        let (flags, valued) = (&["--skip-himalaya"][..], &["--trials", "--write"][..]);
        check_args(&args(&["--trials", "8000", "--skip-himalaya", "--write", "B.md"]), "usage", flags, valued).unwrap();
        check_args(&[], "usage", flags, valued).unwrap();
        let e = check_args(&args(&["--trails", "8000"]), "usage: bench", flags, valued).unwrap_err().to_string();
        assert!(e.contains("\"--trails\"") && e.contains("usage: bench"), "{e}");
        let e = check_args(&args(&["--trials"]), "usage", flags, valued).unwrap_err().to_string();
        assert!(e.contains("--trials needs a value"), "{e}");
        let e = check_args(&args(&["--trials", "--skip-himalaya"]), "usage", flags, valued).unwrap_err().to_string();
        assert!(e.contains("--trials needs a value"), "{e}");
        // A flag given a value it does not take: the value is reported as unknown.
        let e = check_args(&args(&["--skip-himalaya", "1"]), "usage", flags, valued).unwrap_err().to_string();
        assert!(e.contains("\"1\""), "{e}");
    }
}
