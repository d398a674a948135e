//! Data I/O: NIfTI volumes with masks, stimulus lists, repeats, npy, and cached image targets.

use std::path::PathBuf;

use ndarray::{Array3, Array4};
use nifti::writer::WriterOptions;

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("data-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn nifti_4d_and_3d_files_are_masked_in_memory_order() {
    // A 4 x 3 x 2 volume over 5 trials; value = 1000 t + 100 z + 10 y + x.
    let run = Array4::from_shape_fn((4, 3, 2, 5), |(x, y, z, t)| (1000 * t + 100 * z + 10 * y + x) as f32);
    let mask = Array3::from_shape_fn((4, 3, 2), |(x, y, z)| if (x + y + z) % 2 == 0 { 1.0f32 } else { 0.0 });
    let (run_path, mask_path) = (tmp("run.nii.gz"), tmp("mask.nii"));
    WriterOptions::new(&run_path).write_nifti(&run).unwrap();
    WriterOptions::new(&mask_path).write_nifti(&mask).unwrap();
    let (data, trials, voxels) = percept::io::nifti::load_masked(&[&run_path], &mask_path).unwrap();
    assert_eq!((trials, voxels), (5, 12));
    // Memory order: x fastest, then y, then z.
    let coords: Vec<(usize, usize, usize)> = (0..2).flat_map(|z| (0..3).flat_map(move |y| (0..4).map(move |x| (x, y, z)))).filter(|(x, y, z)| (x + y + z) % 2 == 0).collect();
    for t in 0..5 {
        for (k, (x, y, z)) in coords.iter().enumerate() {
            assert_eq!(data[t * 12 + k], (1000 * t + 100 * z + 10 * y + x) as f32, "trial {t} voxel {k}");
        }
    }
    // One 3D file per trial gives the same rows.
    let single = tmp("t3.nii");
    WriterOptions::new(&single).write_nifti(&run.index_axis(ndarray::Axis(3), 3).to_owned()).unwrap();
    let (one, n1, _) = percept::io::nifti::load_masked(&[&single], &mask_path).unwrap();
    assert_eq!(n1, 1);
    assert_eq!(one, data[3 * 12..4 * 12].to_vec());
    // A mask of another size is refused, naming both.
    let small = tmp("small_mask.nii");
    WriterOptions::new(&small).write_nifti(&Array3::<f32>::ones((4, 3, 3))).unwrap();
    let e = percept::io::nifti::load_masked(&[&run_path], &small).unwrap_err().to_string();
    assert!(e.contains("run.nii.gz") && e.contains("[4, 3, 2]") && e.contains("[4, 3, 3]"), "{e}");
    let e = percept::io::nifti::load_masked(&[&tmp("missing.nii")], &mask_path).unwrap_err().to_string();
    assert!(e.contains("missing.nii"), "{e}");
}

#[test]
fn stimulus_lists_and_repeats() {
    let list = tmp("stimuli.csv");
    std::fs::write(&list, "trial,image,captions\n0,a.png,a cat|a pet\n1,b.png,\n2,a.png,a cat\n").unwrap();
    let trials = percept::io::stimuli::read(&list).unwrap();
    assert_eq!(trials.len(), 3);
    assert_eq!(trials[0].captions, vec!["a cat", "a pet"]);
    assert!(trials[1].captions.is_empty());
    assert_eq!(trials[0].image, list.parent().unwrap().join("a.png"));
    let (images, rows) = percept::io::stimuli::repeats(&trials);
    assert_eq!(images.len(), 2);
    assert_eq!(rows, vec![vec![0, 2], vec![1]]);
    let avg = percept::io::stimuli::average_rows(&[1.0, 2.0, 10.0, 20.0, 3.0, 4.0], 2, &rows);
    assert_eq!(avg, vec![2.0, 3.0, 10.0, 20.0]);
    std::fs::write(&list, "file,captions\nx.png,\n").unwrap();
    let e = percept::io::stimuli::read(&list).unwrap_err().to_string();
    assert!(e.contains("no `image` column"), "{e}");

    // Quoted fields: captions keep their commas and quotes through write_csv and read.
    let caps = vec!["A man, a plan, a canal".to_string(), "a \"quoted\" sign".to_string()];
    let rows = vec![("a, b.png".to_string(), caps.clone(), vec!["coco".to_string()]), ("c.png".to_string(), vec![], vec!["drawn".to_string()])];
    std::fs::write(&list, percept::io::stimuli::write_csv(&rows, &["source"]).unwrap()).unwrap();
    let trials = percept::io::stimuli::read(&list).unwrap();
    assert_eq!(trials.len(), 2);
    assert_eq!(trials[0].captions, caps);
    assert_eq!(trials[0].image, list.parent().unwrap().join("a, b.png"));
    assert!(trials[1].captions.is_empty());
    // A row without an image is an error naming the file and the line.
    std::fs::write(&list, "image,captions\na.png,x\n,\"a cat, sitting\"\n").unwrap();
    let e = percept::io::stimuli::read(&list).unwrap_err().to_string();
    assert!(e.contains("stimuli.csv:3") && e.contains("no image"), "{e}");
}

#[test]
fn npy_round_trip_and_errors() {
    let p = tmp("a.npy");
    percept::io::npy::write(&p, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], true).unwrap();
    let a = percept::io::npy::read(&p).unwrap();
    assert_eq!(a.shape, vec![2, 3]);
    assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let e = percept::io::npy::write(&p, &[2, 3], &[0.0; 6], false).unwrap_err().to_string();
    assert!(e.contains("--force"), "{e}");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
    let e = percept::io::npy::read(&p).unwrap_err().to_string();
    assert!(e.contains("a.npy"), "{e}");
    // (N, C, H, W) <-> (N, H, W, C)
    let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
    let y = percept::io::npy::nchw_to_nhwc(&x, [1, 2, 3, 4]);
    assert_eq!(percept::io::npy::nhwc_to_nchw(&y, [1, 3, 4, 2]), x);
    assert_eq!(y[1], 12.0);
}

/// A .npy file (version 1) with this header dict and data bytes.
fn npy_bytes(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut h = dict.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn npy_reader_refuses_hostile_files_before_allocating() {
    let read = |name: &str, bytes: &[u8]| {
        let p = tmp(name);
        std::fs::write(&p, bytes).unwrap();
        percept::io::npy::read(&p).map_err(|e| e.chain())
    };
    let f4 = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    // A 14-byte file whose version-2 header claims 4 GB.
    let mut tiny = b"\x93NUMPY\x02\x00".to_vec();
    tiny.extend_from_slice(&u32::MAX.to_le_bytes());
    tiny.extend_from_slice(b"{}");
    let e = read("huge_header.npy", &tiny).unwrap_err();
    assert!(e.contains("huge_header.npy") && e.contains("header of 4294967295 bytes"), "{e}");
    // A shape whose element count overflows, and one that is merely far larger than the file.
    let e = read("overflow.npy", &npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", &[])).unwrap_err();
    assert!(e.contains("overflow.npy") && e.contains("4294967296"), "{e}");
    let e = read("big.npy", &npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", &f4(&[1.0]))).unwrap_err();
    assert!(e.contains("big.npy") && e.contains("truncated") && e.contains("40000000000 bytes"), "{e}");
    // Trailing bytes, a wrong dtype, a broken shape.
    let e = read("trailing.npy", &npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", &f4(&[1.0, 2.0, 3.0]))).unwrap_err();
    assert!(e.contains("trailing.npy") && e.contains("4 bytes after the data"), "{e}");
    let e = read("int.npy", &npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", &[0; 8])).unwrap_err();
    assert!(e.contains("int.npy") && e.contains("<i8"), "{e}");
    let e = read("shape.npy", &npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", &f4(&[1.0, 2.0]))).unwrap_err();
    assert!(e.contains("shape.npy") && e.contains("`x`"), "{e}");
    let e = read("empty.npy", &[]).unwrap_err();
    assert!(e.contains("empty.npy") && e.contains("not a .npy file"), "{e}");
    let dir = tmp("a_dir.npy");
    std::fs::create_dir_all(&dir).unwrap();
    let e = percept::io::npy::read(&dir).unwrap_err().chain();
    assert!(e.contains("a_dir.npy") && e.contains("not a regular file"), "{e}");
    // What numpy writes besides C-order little-endian f32 reads as the same values.
    let a = read("fortran.npy", &npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", &f4(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]))).unwrap();
    assert_eq!((a.shape.clone(), a.data.clone()), (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    let be: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|x| x.to_be_bytes()).collect();
    assert_eq!(read("be.npy", &npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", &be)).unwrap().data, vec![1.5, -2.0]);
    let h: Vec<u8> = [0.5f32, 3.0].iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect();
    assert_eq!(read("half.npy", &npy_bytes("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", &h)).unwrap().data, vec![0.5, 3.0]);
}
