//! Outputs are never lost or mixed up: created atomically (of two runs, one wins), only regular
//! files are replaced with --force, a job's outputs come whole from one run even when two runs
//! write them at once, folders of outputs are not written into unasked, and an interrupt leaves
//! no temporary or lock files behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use percept::io::output::{ensure_writable, lock, write_atomic};
use percept::Error;

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("outputs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The command line: cargo's build of it, or `PERCEPT_BIN` (a copy, when several worktrees
/// share one target folder and may rebuild it meanwhile).
fn percept_bin() -> PathBuf {
    std::env::var_os("PERCEPT_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_percept")), PathBuf::from)
}

/// Every `*.tmp` and `*.lock` under `dir` (recursively).
fn debris(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(debris(&p));
        } else if p.extension().is_some_and(|x| x == "tmp" || x == "lock") {
            out.push(p);
        }
    }
    out
}

#[test]
fn concurrent_creates_of_one_file_have_one_winner() {
    let dir = tmp("race");
    for round in 0..20 {
        let path = dir.join(format!("out{round}.bin"));
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u8).map(|k| {
                let path = &path;
                s.spawn(move || write_atomic(path, &[k; 4096], false).map(|()| k))
            }).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<u8> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, Error::Exists(p) if p == &path), "round {round}: {e}");
            }
        }
        assert_eq!(std::fs::read(&path).unwrap(), vec![winners[0]; 4096], "round {round}: the file is not the winner's");
    }
    assert!(debris(&dir).is_empty(), "{:?}", debris(&dir));
    assert!(percept::io::output::in_flight_now().iter().all(|p| !p.starts_with(&dir)));
}

#[test]
fn force_replaces_only_regular_files() {
    let dir = tmp("kinds");
    let regular = dir.join("regular.npy");
    write_atomic(&regular, b"old", false).unwrap();
    write_atomic(&regular, b"new", true).unwrap();
    assert_eq!(std::fs::read(&regular).unwrap(), b"new");

    let target = dir.join("precious.txt");
    std::fs::write(&target, b"precious").unwrap();
    let mut cases: Vec<(PathBuf, &str)> = Vec::new();
    #[cfg(unix)]
    {
        let link = dir.join("link.npy");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        cases.push((link, "symbolic link"));
        let dangling = dir.join("dangling.npy");
        std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).unwrap();
        cases.push((dangling, "symbolic link"));
    }
    let sub = dir.join("folder.npy");
    std::fs::create_dir(&sub).unwrap();
    cases.push((sub, "folder"));
    let fifo = dir.join("fifo.npy");
    match Command::new("mkfifo").arg(&fifo).status() {
        Ok(s) if s.success() => cases.push((fifo, "FIFO")),
        _ => eprintln!("mkfifo unavailable: the FIFO case is skipped"),
    }
    for (path, kind) in &cases {
        for overwrite in [false, true] {
            for e in [write_atomic(path, b"x", overwrite).unwrap_err(), ensure_writable(path, overwrite).unwrap_err()] {
                let msg = e.to_string();
                assert!(matches!(e, Error::NotRegular { .. }), "{}: {msg}", path.display());
                assert!(msg.contains(path.file_name().unwrap().to_str().unwrap()) && msg.contains(kind), "{msg}");
            }
        }
        let m = std::fs::symlink_metadata(path).unwrap();
        assert!(!m.is_file(), "{} was replaced", path.display());
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    assert!(debris(&dir).is_empty(), "{:?}", debris(&dir));

    // The command line too: `fit --force` onto a link refuses before any work.
    #[cfg(unix)]
    {
        let (x, y) = data(&dir, 1);
        let link = dir.join("link.npy");
        let out = Command::new(percept_bin())
            .args(["fit", "--voxels", x.to_str().unwrap(), "--targets", y.to_str().unwrap(), "--out", link.to_str().unwrap(), "--force"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("link.npy") && err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    }
}

#[test]
fn a_lock_is_held_once_and_removed_after() {
    let dir = tmp("lock");
    let out = dir.join("job");
    let first = lock(&out).unwrap();
    assert_eq!(first.path(), dir.join("job.lock"));
    assert!(first.path().exists());
    let e = lock(&out).unwrap_err();
    assert!(matches!(e, Error::Busy { .. }), "{e}");
    assert!(e.to_string().contains("another percept run is writing") && e.to_string().contains("job"), "{e}");
    // A trailing slash names the same output.
    assert!(matches!(lock(&dir.join("job/")), Err(Error::Busy { .. })));
    drop(first);
    assert!(!dir.join("job.lock").exists());
    // A lock file left by a run that died does not block: the OS released its lock.
    std::fs::write(dir.join("job.lock"), b"").unwrap();
    let again = lock(&out).unwrap();
    drop(again);
    assert!(debris(&dir).is_empty(), "{:?}", debris(&dir));
}

/// A (10, 4) voxels and a (10, 2) targets array, different for each `seed`.
fn data(dir: &Path, seed: u64) -> (PathBuf, PathBuf) {
    let (x, y) = (dir.join(format!("x{seed}.npy")), dir.join(format!("y{seed}.npy")));
    let xs: Vec<f32> = (0..40).map(|i| (((i as u64 + 3) * (seed + 7919)) % 13) as f32).collect();
    let ys: Vec<f32> = (0..20).map(|i| (((i as u64 + 5) * (seed + 104_729)) % 11) as f32).collect();
    percept::io::npy::write(&x, &[10, 4], &xs, true).unwrap();
    percept::io::npy::write(&y, &[10, 2], &ys, true).unwrap();
    (x, y)
}

fn spawn_fit(x: &Path, y: &Path, region: &str, out: &Path, force: bool) -> Child {
    let mut c = Command::new(percept_bin());
    c.args(["fit", "--voxels", x.to_str().unwrap(), "--targets", y.to_str().unwrap(), "--region", region, "--out", out.to_str().unwrap()]);
    if force {
        c.arg("--force");
    }
    c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

/// The region stored in the decoder at `out`, and the one its report names.
fn regions(out: &Path) -> (String, String) {
    let loaded = percept::io::decoder::LoadedDecoder::open(out).unwrap();
    let decoder = loaded.decoder().unwrap().region().to_string();
    let report = std::fs::read_to_string(out.with_extension("md")).unwrap();
    let first = report.lines().next().unwrap_or_default();
    let named = ["run_a", "run_b"].iter().find(|r| first.contains(*r)).map_or(String::new(), |r| r.to_string());
    (decoder, named)
}

#[test]
fn two_fits_on_one_out_never_mix_their_files() {
    let dir = tmp("fits");
    let (xa, ya) = data(&dir, 1);
    let (xb, yb) = data(&dir, 2);
    let out = dir.join("dec.safetensors");
    let report = dir.join("dec.md");
    for force in [false, true] {
        for round in 0..20 {
            if !force {
                let _ = std::fs::remove_file(&out);
                let _ = std::fs::remove_file(&report);
            }
            let a = spawn_fit(&xa, &ya, "run_a", &out, force);
            let b = spawn_fit(&xb, &yb, "run_b", &out, force);
            let results: Vec<(&str, bool, String)> = [("run_a", a), ("run_b", b)]
                .into_iter()
                .map(|(r, c)| {
                    let o = c.wait_with_output().unwrap();
                    (r, o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
                })
                .collect();
            let ok: Vec<&str> = results.iter().filter(|r| r.1).map(|r| r.0).collect();
            for (r, success, err) in &results {
                if !success {
                    assert!(err.contains("dec.safetensors") || err.contains("dec.md"), "force {force} round {round}: {r} failed without naming the output: {err}");
                    assert!(err.contains("exists") || err.contains("another percept run is writing"), "force {force} round {round}: {r}: {err}");
                }
            }
            if force {
                assert!(!ok.is_empty(), "force {force} round {round}: neither run succeeded: {results:?}");
            } else {
                assert_eq!(ok.len(), 1, "force {force} round {round}: {results:?}");
            }
            let (decoder, named) = regions(&out);
            assert_eq!(decoder, named, "force {force} round {round}: the decoder and the report come from different runs ({results:?})");
            assert!(ok.contains(&decoder.as_str()), "force {force} round {round}: the outputs are from {decoder}, which failed ({results:?})");
            assert!(debris(&dir).is_empty(), "force {force} round {round}: {:?}", debris(&dir));
        }
    }
}

#[test]
fn simulate_and_demo_refuse_a_folder_with_files_unless_forced() {
    let quiet = percept::progress::Silent;
    let dir = tmp("partial");
    // What an interrupted run leaves: some stimuli and no settings.txt.
    std::fs::create_dir_all(dir.join("stimuli")).unwrap();
    std::fs::write(dir.join("stimuli/train_000.png"), b"half a run").unwrap();
    let settings = percept::sim::Settings { size: 32, test_photos: 8, crops: 1, shapes: 4, letters: 4, ..percept::sim::Settings::default() };
    let e = percept::pipeline::simulate::run(&percept::pipeline::Context::new(), &settings, &dir, false, &quiet).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::NotEmpty { .. }) && msg.contains("partial") && msg.contains("--force"), "{msg}");
    assert_eq!(std::fs::read(dir.join("stimuli/train_000.png")).unwrap(), b"half a run");
    // The command line says the same, and leaves nothing of its own.
    let out = Command::new(percept_bin()).args(["simulate", "--out", dir.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not empty") && err.contains("--force"), "{err}");
    assert!(!PathBuf::from(format!("{}.lock", dir.display())).exists());
    // A file where the folder should be.
    let file = tmp("afile").join("subject");
    std::fs::write(&file, b"x").unwrap();
    assert!(percept::pipeline::simulate::run(&percept::pipeline::Context::new(), &settings, &file, true, &quiet).unwrap_err().to_string().contains("not a folder"));
    // An empty folder is fine, and --force writes into a partial one.
    percept::pipeline::simulate::run(&percept::pipeline::Context::new(), &settings, &tmp("empty"), false, &quiet).unwrap();
    percept::pipeline::simulate::run(&percept::pipeline::Context::new(), &settings, &dir, true, &quiet).unwrap();
    assert!(dir.join("settings.txt").exists());
    assert!(debris(&dir).is_empty(), "{:?}", debris(&dir));

    // The demo's folder: files but no report.
    let demo = tmp("demo-partial");
    std::fs::create_dir_all(demo.join("subject")).unwrap();
    std::fs::write(demo.join("subject/voxels.csv"), b"half a run").unwrap();
    let o = percept::pipeline::demo::Options::new(&demo, false);
    let e = percept::pipeline::demo::run(&percept::pipeline::Context::new(), &o, &quiet).unwrap_err().to_string();
    assert!(e.contains("demo-partial") && e.contains("not empty") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read(demo.join("subject/voxels.csv")).unwrap(), b"half a run");
}

#[cfg(unix)]
#[test]
fn an_interrupt_leaves_no_temporary_or_lock_files() {
    let dir = tmp("interrupt");
    let out = dir.join("subject");
    // A subject of few voxels but the default stimuli (over a thousand PNGs) takes seconds to
    // save: interrupt it while it saves (without the higher visual voxels' DNN term, whose
    // GPU stage would take most of the 120 s allowed before saving starts on a busy machine).
    let mut child = Command::new(percept_bin()).args(["simulate", "--out", out.to_str().unwrap(), "--early", "200", "--higher", "50", "--higher-dnn-share", "0"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    let stimuli = out.join("stimuli");
    loop {
        let started = std::fs::read_dir(&stimuli).map(|d| d.count() >= 3).unwrap_or(false);
        if started || t0.elapsed() > Duration::from_secs(120) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("simulate ended before it was interrupted ({status}): the test needs a longer run");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let t1 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t1.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("simulate did not stop within 10 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(!status.success(), "{status}");
    assert_eq!(status.code(), Some(130), "{status}");
    let left = debris(&dir);
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!out.join("settings.txt").exists(), "the interrupted run finished");
    // And the next run refuses the partial folder.
    let again = Command::new(percept_bin()).args(["simulate", "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not empty"));
}

#[test]
fn folder_jobs_refuse_while_another_run_writes_the_folder() {
    let dir = tmp("busy");
    let (x, y) = data(&dir, 3);
    let dec = dir.join("dec.safetensors");
    let out = Command::new(percept_bin()).args(["fit", "--voxels", x.to_str().unwrap(), "--targets", y.to_str().unwrap(), "--out", dec.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let folder = dir.join("folder");
    let held = lock(&folder).unwrap();
    let out = Command::new(percept_bin()).args(["reconstruct", "--voxels", x.to_str().unwrap(), "--decoder", dec.to_str().unwrap(), "--out", folder.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("another percept run is writing") && err.contains("folder"), "{err}");
    let settings = percept::sim::Settings::default();
    let e = percept::pipeline::simulate::run(&percept::pipeline::Context::new(), &settings, &folder, true, &percept::progress::Silent).unwrap_err();
    assert!(matches!(e, Error::Busy { .. }), "{e}");
    let e = percept::pipeline::demo::run(&percept::pipeline::Context::new(), &percept::pipeline::demo::Options::new(&folder, true), &percept::progress::Silent).unwrap_err();
    assert!(matches!(e, Error::Busy { .. }), "{e}");
    // And the fit of a decoder held by another run.
    let held_dec = lock(&dec).unwrap();
    let out = Command::new(percept_bin()).args(["fit", "--voxels", x.to_str().unwrap(), "--targets", y.to_str().unwrap(), "--out", dec.to_str().unwrap(), "--force"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("another percept run is writing") && err.contains("dec.safetensors"), "{err}");
    drop((held, held_dec));
    assert!(debris(&dir).is_empty(), "{:?}", debris(&dir));
    assert!(!folder.exists(), "a refused run made the folder");
}
