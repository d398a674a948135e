//! Stimuli for the simulated subject: augmented crops of photographs, and procedurally drawn
//! shapes and letters (the artificial stimuli of the Kamitani lab's experiments).

use image::{imageops::FilterType, RgbImage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::io::image::Rgb;

/// How a photograph was cropped for one stimulus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    /// Left edge, in source pixels.
    pub x: u32,
    /// Top edge, in source pixels.
    pub y: u32,
    /// Side of the square, in source pixels.
    pub side: u32,
    /// Mirrored left-right.
    pub flip: bool,
}

impl Crop {
    /// The largest centred square (what test photos are shown as).
    pub fn centre(w: u32, h: u32) -> Self {
        let s = w.min(h);
        Crop { x: (w - s) / 2, y: (h - s) / 2, side: s, flip: false }
    }

    /// A random square of 55-100% of the shorter side at a random position, flipped half the
    /// time: the crops and shifts of the training set.
    pub fn random(w: u32, h: u32, rng: &mut ChaCha8Rng) -> Self {
        let short = w.min(h);
        let side = ((short as f32) * rng.random_range(0.55..=1.0)).round().max(8.0) as u32;
        Crop { x: rng.random_range(0..=w - side), y: rng.random_range(0..=h - side), side, flip: rng.random_bool(0.5) }
    }

    /// Applies the crop and resizes to `size` x `size`.
    pub fn apply(&self, img: &RgbImage, size: usize) -> Rgb {
        let c = image::imageops::crop_imm(img, self.x, self.y, self.side, self.side).to_image();
        let mut r = image::imageops::resize(&c, size as u32, size as u32, FilterType::Triangle);
        if self.flip {
            image::imageops::flip_horizontal_in_place(&mut r);
        }
        Rgb::from_image(&r)
    }

    /// A short description for the stimulus list.
    pub fn describe(&self) -> String {
        format!("crop x{} y{} side{}{}", self.x, self.y, self.side, if self.flip { " flipped" } else { "" })
    }
}

/// Named colours for drawn stimuli (and their captions).
const COLOURS: [(&str, [f32; 3]); 9] = [
    ("red", [0.85, 0.1, 0.1]),
    ("green", [0.1, 0.7, 0.2]),
    ("blue", [0.15, 0.25, 0.9]),
    ("yellow", [0.95, 0.85, 0.1]),
    ("white", [0.95, 0.95, 0.95]),
    ("black", [0.05, 0.05, 0.05]),
    ("orange", [0.95, 0.55, 0.1]),
    ("purple", [0.55, 0.2, 0.7]),
    ("gray", [0.5, 0.5, 0.5]),
];

/// 5x7 bitmaps of the letters drawn (rows top to bottom, bit 4 = leftmost column).
const LETTERS: [(char, [u8; 7]); 12] = [
    ('A', [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11]),
    ('B', [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E]),
    ('C', [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E]),
    ('E', [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F]),
    ('H', [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11]),
    ('I', [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E]),
    ('L', [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F]),
    ('N', [0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x11]),
    ('R', [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11]),
    ('S', [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E]),
    ('T', [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04]),
    ('X', [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11]),
];

/// Shapes drawn, by name.
const SHAPES: [&str; 6] = ["circle", "square", "triangle", "cross", "ring", "bar"];

/// Renders `inside(u, v)` (u, v in [-1, 1], v down) in `fg` over `bg`, 4x4 supersampled.
fn render(size: usize, bg: [f32; 3], fg: [f32; 3], inside: impl Fn(f32, f32) -> bool) -> Rgb {
    let mut data = vec![0f32; size * size * 3];
    const SS: usize = 4;
    for y in 0..size {
        for x in 0..size {
            let mut hits = 0;
            for sy in 0..SS {
                for sx in 0..SS {
                    let u = ((x * SS + sx) as f32 + 0.5) / (size * SS) as f32 * 2.0 - 1.0;
                    let v = ((y * SS + sy) as f32 + 0.5) / (size * SS) as f32 * 2.0 - 1.0;
                    hits += usize::from(inside(u, v));
                }
            }
            let a = hits as f32 / (SS * SS) as f32;
            for c in 0..3 {
                data[(y * size + x) * 3 + c] = bg[c] * (1.0 - a) + fg[c] * a;
            }
        }
    }
    Rgb { height: size, width: size, data }
}

/// A colour's name and RGB value.
type Colour = (&'static str, [f32; 3]);

/// Two different random colours (foreground, background).
fn colours(rng: &mut ChaCha8Rng) -> (Colour, Colour) {
    let f = rng.random_range(0..COLOURS.len());
    let mut b = rng.random_range(0..COLOURS.len() - 1);
    if b >= f {
        b += 1;
    }
    (COLOURS[f], COLOURS[b])
}

/// A random geometric shape at a random place, size and angle: `(image, caption)`.
pub fn shape(size: usize, rng: &mut ChaCha8Rng) -> (Rgb, String) {
    let ((fname, fg), (bname, bg)) = colours(rng);
    let kind = SHAPES[rng.random_range(0..SHAPES.len())];
    let r: f32 = rng.random_range(0.2..0.6);
    let (cx, cy): (f32, f32) = (rng.random_range(-0.5..0.5), rng.random_range(-0.5..0.5));
    let a: f32 = rng.random_range(0.0..std::f32::consts::PI);
    let (ca, sa) = (a.cos(), a.sin());
    let img = render(size, bg, fg, |u, v| {
        let (du, dv) = (u - cx, v - cy);
        // Rotated coordinates.
        let (p, q) = (ca * du + sa * dv, -sa * du + ca * dv);
        match kind {
            "circle" => du * du + dv * dv <= r * r,
            "ring" => ((du * du + dv * dv).sqrt() - r * 0.8).abs() <= r * 0.2,
            "square" => p.abs() <= r * 0.8 && q.abs() <= r * 0.8,
            "cross" => (p.abs() <= r && q.abs() <= r * 0.25) || (q.abs() <= r && p.abs() <= r * 0.25),
            "bar" => p.abs() <= r * 1.4 && q.abs() <= r * 0.2,
            _ => {
                // Equilateral triangle: inside all three half-planes.
                (0..3).all(|k| {
                    let t = std::f32::consts::TAU * k as f32 / 3.0;
                    p * t.cos() + q * t.sin() <= r * 0.5
                })
            }
        }
    });
    (img, format!("a {fname} {kind} on a {bname} background"))
}

/// A random letter at a random place and size: `(image, caption)`.
pub fn letter(size: usize, rng: &mut ChaCha8Rng) -> (Rgb, String) {
    let ((fname, fg), (bname, bg)) = colours(rng);
    let (ch, bits) = LETTERS[rng.random_range(0..LETTERS.len())];
    let h: f32 = rng.random_range(0.7..1.4); // glyph height in [-1, 1] units
    let w = h * 5.0 / 7.0;
    let (cx, cy): (f32, f32) = (rng.random_range(-0.3..0.3), rng.random_range(-0.3..0.3));
    let img = render(size, bg, fg, |u, v| {
        let col = ((u - cx + w / 2.0) / w * 5.0).floor();
        let row = ((v - cy + h / 2.0) / h * 7.0).floor();
        (0.0..5.0).contains(&col) && (0.0..7.0).contains(&row) && bits[row as usize] & (0x10 >> col as u32) != 0
    });
    (img, format!("the letter {ch} in {fname} on a {bname} background"))
}
