//! Text for the PDF report in every script. Fonts are found on the system by
//! family (DejaVu Sans for Latin, Greek, Cyrillic, Hebrew, Arabic and
//! symbols; Droid Sans Fallback for Chinese and Japanese, NanumGothic for
//! Korean), each character set in the first font that
//! has it; text is laid out in bidi visual order, shaped by rustybuzz (Arabic
//! joining, marks, kerning) and embedded as a subset of the glyphs used, with
//! a ToUnicode map so the PDF's text can be searched and copied.
//!
//! With none of the fonts installed the report falls back to the viewer's
//! Helvetica in WinAnsiEncoding, where other characters print as `?`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::OnceLock;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Name, Pdf, Rect, Ref, Str};
use rustybuzz::ttf_parser::{self, Tag};
use subsetter::GlyphRemapper;
use unicode_bidi::BidiInfo;

/// Families tried in order for each character; the first face that has a
/// glyph for it sets it.
const FAMILIES: [&str; 10] = [
    "DejaVu Sans",
    "Noto Sans",
    "Noto Sans Hebrew",
    "Noto Sans Arabic",
    "Droid Sans Fallback",
    "NanumGothic",
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "WenQuanYi Zen Hei",
    "Noto Sans Symbols",
];

/// One font face, loaded once for the life of the process.
struct Face {
    shaper: rustybuzz::Face<'static>,
    data: &'static [u8],
    index: u32,
    postscript: String,
    cff: bool,
}

impl Face {
    fn units(&self) -> f32 {
        self.shaper.units_per_em() as f32
    }

    /// A glyph's own advance, in thousandths of an em (the PDF's unit).
    fn advance(&self, glyph: u16) -> f32 {
        let units = self
            .shaper
            .glyph_hor_advance(ttf_parser::GlyphId(glyph))
            .unwrap_or(0);
        units as f32 * 1000.0 / self.units()
    }

    fn covers(&self, c: char) -> bool {
        self.shaper.glyph_index(c).is_some()
    }
}

struct Faces {
    list: Vec<Face>,
    regular: Vec<usize>,
    bold: Vec<usize>,
}

static FACES: OnceLock<Option<Faces>> = OnceLock::new();

fn faces() -> Option<&'static Faces> {
    FACES.get_or_init(load_faces).as_ref()
}

fn load_faces() -> Option<Faces> {
    let mut db = fontdb::Database::new();
    db.load_system_fonts();
    let mut list: Vec<Face> = Vec::new();
    let chain = |weight: fontdb::Weight, list: &mut Vec<Face>| -> Vec<usize> {
        let mut chain = Vec::new();
        for family in FAMILIES {
            let query = fontdb::Query {
                families: &[fontdb::Family::Name(family)],
                weight,
                ..fontdb::Query::default()
            };
            let Some(id) = db.query(&query) else { continue };
            let Some(info) = db.face(id) else { continue };
            let name = info.post_script_name.clone();
            if let Some(i) = list.iter().position(|f| f.postscript == name) {
                chain.push(i);
                continue;
            }
            let loaded = db.with_face_data(id, |data, index| {
                let data: &'static [u8] = Box::leak(data.to_vec().into_boxed_slice());
                rustybuzz::Face::from_slice(data, index).map(|shaper| Face {
                    cff: shaper.raw_face().table(Tag::from_bytes(b"CFF ")).is_some(),
                    shaper,
                    data,
                    index,
                    postscript: name.clone(),
                })
            });
            if let Some(Some(face)) = loaded {
                chain.push(list.len());
                list.push(face);
            }
        }
        chain
    };
    let regular = chain(fontdb::Weight::NORMAL, &mut list);
    let bold = chain(fontdb::Weight::BOLD, &mut list);
    if regular.is_empty() {
        tracing::warn!(
            "no font for the PDF report (install fonts-dejavu-core, fonts-droid-fallback and fonts-nanum): \
             it prints in Helvetica, and characters outside Windows-1252 as ?"
        );
        return None;
    }
    tracing::info!(
        fonts = ?list.iter().map(|f| f.postscript.as_str()).collect::<Vec<_>>(),
        "fonts for the PDF report"
    );
    Some(Faces {
        list,
        regular,
        bold,
    })
}

/// A glyph as the shaper placed it: its own advance may differ from the
/// shaped one (kerning, joining), and marks may be moved sideways.
#[derive(Clone, Debug)]
struct Placed {
    glyph: u16,
    advance: f32,
    offset: f32,
    /// The characters this glyph stands for (empty for the second and later
    /// glyphs of one cluster).
    text: Range<usize>,
}

/// A run of glyphs of one face, in visual order.
#[derive(Clone, Debug)]
struct Run {
    face: usize,
    glyphs: Vec<Placed>,
}

/// A line of text ready for the page.
#[derive(Clone, Debug)]
pub enum Line {
    /// Helvetica, WinAnsiEncoding bytes.
    Standard(Vec<u8>),
    /// Glyph runs of the embedded faces, glyph ids as in the subset.
    Shaped(Vec<ShapedRun>),
}

#[derive(Clone, Debug)]
pub struct ShapedRun {
    face: usize,
    /// (subset glyph id, adjustment before it, adjustment after it) in
    /// thousandths of an em, as a `TJ` array takes them.
    glyphs: Vec<(u16, f32, f32)>,
}

/// What one report uses of the faces: the glyphs (for the subsets) and what
/// text each stands for (for ToUnicode).
struct Used {
    remapper: GlyphRemapper,
    unicode: BTreeMap<u16, String>,
}

/// Lays out a report's text and writes the fonts it used.
pub struct Typesetter {
    faces: Option<&'static Faces>,
    used: Vec<Option<Used>>,
}

impl Default for Typesetter {
    fn default() -> Self {
        Self::new()
    }
}

impl Typesetter {
    pub fn new() -> Self {
        Self::with_faces(faces())
    }

    /// The Helvetica fallback (as on a machine without the fonts).
    pub fn standard() -> Self {
        Self::with_faces(None)
    }

    fn with_faces(faces: Option<&'static Faces>) -> Self {
        let used = faces
            .map(|f| f.list.iter().map(|_| None).collect())
            .unwrap_or_default();
        Self { faces, used }
    }

    /// Whether text outside Windows-1252 prints as written.
    pub fn embeds_fonts(&self) -> bool {
        self.faces.is_some()
    }

    /// `text` on one line at `size` points, cut with `...` to fit `width`.
    pub fn line(&mut self, text: &str, bold: bool, size: f32, width: f32) -> Line {
        let Some(faces) = self.faces else {
            return Line::Standard(win_ansi(&fit_standard(text, size, width)));
        };
        let chain = if bold && !faces.bold.is_empty() {
            &faces.bold
        } else {
            &faces.regular
        };
        let max = width * 1000.0 / size;
        let mut runs = shape(faces, chain, text);
        let mut shown = text.to_string();
        if runs_width(&runs) > max {
            // The longest prefix (on character boundaries) that fits with
            // the ellipsis: found by bisection, each step shaped again.
            let mut bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            bounds.push(text.len());
            let (mut lo, mut hi) = (0usize, bounds.len() - 1);
            let cut = |n: usize| format!("{}...", text[..bounds[n]].trim_end());
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if runs_width(&shape(faces, chain, &cut(mid))) <= max {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            shown = cut(lo);
            runs = shape(faces, chain, &shown);
        }
        Line::Shaped(
            runs.into_iter()
                .map(|run| self.commit(faces, run, &shown))
                .collect(),
        )
    }

    /// Records a run's glyphs as used and turns them into subset ids.
    fn commit(&mut self, faces: &Faces, run: Run, text: &str) -> ShapedRun {
        let face = &faces.list[run.face];
        let used = self.used[run.face].get_or_insert_with(|| Used {
            remapper: GlyphRemapper::new(),
            unicode: BTreeMap::new(),
        });
        let glyphs = run
            .glyphs
            .into_iter()
            .map(|g| {
                let id = used.remapper.remap(g.glyph);
                let chars = &text[g.text.clone()];
                if !chars.is_empty() {
                    used.unicode.entry(id).or_insert_with(|| chars.to_string());
                }
                let own = face.advance(g.glyph);
                // TJ moves left by an adjustment: a mark moved right by
                // `offset` is preceded by -offset and followed by +offset.
                (id, -g.offset, own - g.advance + g.offset)
            })
            .collect();
        ShapedRun {
            face: run.face,
            glyphs,
        }
    }

    /// Shows a line with its left end at (x, y).
    pub fn show(&self, c: &mut Content, line: &Line, bold: bool, size: f32, x: f32, y: f32) {
        c.begin_text();
        c.next_line(x, y);
        match line {
            Line::Standard(bytes) => {
                c.set_font(Name(if bold { b"F2" } else { b"F1" }), size);
                c.show(Str(bytes));
            }
            Line::Shaped(runs) => {
                for run in runs {
                    let name = face_resource(run.face);
                    c.set_font(Name(name.as_bytes()), size);
                    let mut shown = c.show_positioned();
                    let mut items = shown.items();
                    let mut pending: Vec<u8> = Vec::new();
                    for &(id, before, after) in &run.glyphs {
                        if before.abs() > 0.01 {
                            if !pending.is_empty() {
                                items.show(Str(&pending));
                                pending.clear();
                            }
                            items.adjust(before);
                        }
                        pending.extend(id.to_be_bytes());
                        if after.abs() > 0.01 {
                            items.show(Str(&pending));
                            pending.clear();
                            items.adjust(after);
                        }
                    }
                    if !pending.is_empty() {
                        items.show(Str(&pending));
                    }
                }
            }
        }
        c.end_text();
    }

    /// The font resources every page lists: (name, object).
    pub fn resources(&self, first: Ref) -> Vec<(String, Ref)> {
        if self.faces.is_none() {
            return vec![
                ("F1".to_string(), first),
                ("F2".to_string(), Ref::new(first.get() + 1)),
            ];
        }
        self.used_faces()
            .enumerate()
            .map(|(k, (i, _))| (face_resource(i), Ref::new(first.get() + 5 * k as i32)))
            .collect()
    }

    fn used_faces(&self) -> impl Iterator<Item = (usize, &Used)> {
        self.used
            .iter()
            .enumerate()
            .filter_map(|(i, u)| u.as_ref().map(|u| (i, u)))
    }

    /// Writes the fonts from object `first` on (the ones `resources` named).
    pub fn write_fonts(&self, pdf: &mut Pdf, first: Ref) {
        let Some(faces) = self.faces else {
            pdf.type1_font(first)
                .base_font(Name(b"Helvetica"))
                .encoding_predefined(Name(b"WinAnsiEncoding"));
            pdf.type1_font(Ref::new(first.get() + 1))
                .base_font(Name(b"Helvetica-Bold"))
                .encoding_predefined(Name(b"WinAnsiEncoding"));
            return;
        };
        for (k, (i, used)) in self.used_faces().enumerate() {
            let face = &faces.list[i];
            let base = first.get() + 5 * k as i32;
            let (type0, cid, descriptor, file, cmap) = (
                Ref::new(base),
                Ref::new(base + 1),
                Ref::new(base + 2),
                Ref::new(base + 3),
                Ref::new(base + 4),
            );
            // A subset's name starts with six capitals and a plus.
            let tag: String = (0..6)
                .map(|n| (b'A' + ((i * 7 + n * 3 + k) % 26) as u8) as char)
                .collect();
            let name = format!("{tag}+{}", face.postscript);
            let system = SystemInfo {
                registry: Str(b"Adobe"),
                ordering: Str(b"Identity"),
                supplement: 0,
            };
            pdf.type0_font(type0)
                .base_font(Name(name.as_bytes()))
                .encoding_predefined(Name(b"Identity-H"))
                .descendant_font(cid)
                .to_unicode(cmap);
            let widths: Vec<f32> = used
                .remapper
                .remapped_gids()
                .map(|old| face.advance(old))
                .collect();
            let mut font = pdf.cid_font(cid);
            font.subtype(if face.cff {
                CidFontType::Type0
            } else {
                CidFontType::Type2
            })
            .base_font(Name(name.as_bytes()))
            .system_info(system)
            .font_descriptor(descriptor)
            .default_width(0.0);
            if !face.cff {
                font.cid_to_gid_map_predefined(Name(b"Identity"));
            }
            font.widths().consecutive(0, widths);
            drop(font);

            let scale = |v: i16| v as f32 * 1000.0 / face.units();
            let bbox = face.shaper.global_bounding_box();
            let mut d = pdf.font_descriptor(descriptor);
            d.name(Name(name.as_bytes()))
                .flags(FontFlags::SYMBOLIC)
                .bbox(Rect::new(
                    scale(bbox.x_min),
                    scale(bbox.y_min),
                    scale(bbox.x_max),
                    scale(bbox.y_max),
                ))
                .italic_angle(0.0)
                .ascent(scale(face.shaper.ascender()))
                .descent(scale(face.shaper.descender()))
                .cap_height(scale(
                    face.shaper
                        .capital_height()
                        .unwrap_or(face.shaper.ascender()),
                ))
                .stem_v(80.0);
            if face.cff {
                d.font_file3(file);
            } else {
                d.font_file2(file);
            }
            drop(d);

            let subset = subsetter::subset(face.data, face.index, &used.remapper)
                .unwrap_or_else(|e| {
                    tracing::warn!(font = %face.postscript, error = %e, "font subset failed: embedding the whole font");
                    face.data.to_vec()
                });
            let packed = miniz_oxide::deflate::compress_to_vec_zlib(&subset, 6);
            let mut stream = pdf.stream(file, &packed);
            stream.filter(Filter::FlateDecode);
            if face.cff {
                stream.pair(Name(b"Subtype"), Name(b"OpenType"));
            }
            drop(stream);

            let mut map = UnicodeCmap::new(Name(b"Auditdeck-UTF16"), system);
            for (id, text) in &used.unicode {
                map.pair_with_multiple(*id, text.chars());
            }
            pdf.cmap(cmap, &map.finish());
        }
    }
}

fn face_resource(face: usize) -> String {
    format!("G{face}")
}

fn runs_width(runs: &[Run]) -> f32 {
    runs.iter().flat_map(|r| &r.glyphs).map(|g| g.advance).sum()
}

/// `text` as glyph runs in visual order: the bidi algorithm's runs, left to
/// right, each split where the face changes and shaped in its direction.
fn shape(faces: &Faces, chain: &[usize], text: &str) -> Vec<Run> {
    let mut out = Vec::new();
    if text.is_empty() {
        return out;
    }
    if let Some(run) = simple_run(faces, chain[0], text) {
        out.push(run);
        return out;
    }
    let bidi = BidiInfo::new(text, None);
    for para in &bidi.paragraphs {
        let (levels, runs) = bidi.visual_runs(para, para.range.clone());
        for range in runs {
            let rtl = levels[range.start].is_rtl();
            let mut pieces = split_by_face(faces, chain, text, range);
            if rtl {
                pieces.reverse();
            }
            for (face, piece) in pieces {
                out.push(shape_piece(faces, face, text, piece, rtl));
            }
        }
    }
    out
}

/// Most cells (ids, dates, actions, Latin, Greek and Cyrillic text) need no
/// bidi and no shaping: left to right, one glyph per character of the first
/// face, each at its own advance. `None` when the text needs more.
fn simple_run(faces: &Faces, face: usize, text: &str) -> Option<Run> {
    let f = &faces.list[face];
    let mut glyphs = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        // Combining marks, and from Hebrew on: scripts that shape or run
        // right to left.
        if ('\u{0300}'..='\u{036f}').contains(&c) || c >= '\u{0590}' {
            return None;
        }
        let glyph = f.shaper.glyph_index(c)?.0;
        glyphs.push(Placed {
            glyph,
            advance: f.advance(glyph),
            offset: 0.0,
            text: i..i + c.len_utf8(),
        });
    }
    Some(Run { face, glyphs })
}

/// Splits `range` of `text` into pieces of one face each: a character stays
/// in the current face when that face has it (spaces, marks, punctuation),
/// else goes to the first face of the chain that has it.
fn split_by_face(
    faces: &Faces,
    chain: &[usize],
    text: &str,
    range: Range<usize>,
) -> Vec<(usize, Range<usize>)> {
    let mut pieces: Vec<(usize, Range<usize>)> = Vec::new();
    for (i, c) in text[range.clone()].char_indices() {
        let at = range.start + i;
        let end = at + c.len_utf8();
        let current = pieces.last().map(|p| p.0);
        let face = match current {
            Some(f) if faces.list[f].covers(c) || c.is_whitespace() => f,
            _ => chain
                .iter()
                .copied()
                .find(|&f| faces.list[f].covers(c))
                .or(current)
                .unwrap_or(chain[0]),
        };
        match pieces.last_mut() {
            Some((f, r)) if *f == face => r.end = end,
            _ => pieces.push((face, at..end)),
        }
    }
    pieces
}

fn shape_piece(faces: &Faces, face: usize, text: &str, range: Range<usize>, rtl: bool) -> Run {
    let f = &faces.list[face];
    let piece = &text[range.clone()];
    let mut buffer = rustybuzz::UnicodeBuffer::new();
    buffer.push_str(piece);
    buffer.set_direction(if rtl {
        rustybuzz::Direction::RightToLeft
    } else {
        rustybuzz::Direction::LeftToRight
    });
    buffer.guess_segment_properties();
    let shaped = rustybuzz::shape(&f.shaper, &[], buffer);
    let scale = 1000.0 / f.units();
    // Each cluster's text runs from its start to the next cluster's start.
    let mut starts: Vec<usize> = shaped
        .glyph_infos()
        .iter()
        .map(|g| g.cluster as usize)
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let mut seen = vec![false; starts.len()];
    let glyphs = shaped
        .glyph_infos()
        .iter()
        .zip(shaped.glyph_positions())
        .map(|(info, pos)| {
            let start = info.cluster as usize;
            let k = starts.partition_point(|&s| s < start);
            let text = if seen[k] {
                0..0
            } else {
                seen[k] = true;
                let end = starts.get(k + 1).copied().unwrap_or(piece.len());
                range.start + start..range.start + end
            };
            Placed {
                glyph: info.glyph_id as u16,
                advance: pos.x_advance as f32 * scale,
                offset: pos.x_offset as f32 * scale,
                text,
            }
        })
        .collect();
    Run { face, glyphs }
}

/// Cuts text to about `width` points of Helvetica at `size`, ending in `...`.
fn fit_standard(text: &str, size: f32, width: f32) -> String {
    let max = (width / (size * 0.56)) as usize;
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(3)).collect();
        cut.push_str("...");
        cut
    }
}

/// Text in the PDF's WinAnsiEncoding: Latin-1 and the common punctuation;
/// anything else becomes `?`.
pub fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{ff}' => c as u8,
            '€' => 0x80,
            '‚' => 0x82,
            '„' => 0x84,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '™' => 0x99,
            _ => b'?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPTS: [&str; 8] = [
        "Zürich – 5 €",
        "Пароль изменён",
        "Ο κωδικός άλλαξε",
        "הסיסמה שונתה",
        "تم تغيير كلمة المرور",
        "密码已更改",
        "パスワード変更",
        "비밀번호 변경",
    ];

    fn glyphs(line: &Line) -> Vec<(usize, u16)> {
        match line {
            Line::Shaped(runs) => runs
                .iter()
                .flat_map(|r| r.glyphs.iter().map(|g| (r.face, g.0)))
                .collect(),
            Line::Standard(_) => {
                panic!("no fonts: install fonts-dejavu-core, fonts-droid-fallback and fonts-nanum")
            }
        }
    }

    #[test]
    fn every_script_finds_a_glyph_in_the_system_fonts() {
        let mut t = Typesetter::new();
        assert!(
            t.embeds_fonts(),
            "install fonts-dejavu-core, fonts-droid-fallback and fonts-nanum"
        );
        let faces = t.faces.unwrap();
        for text in SCRIPTS {
            let line = t.line(text, false, 7.5, 1000.0);
            for (face, id) in glyphs(&line) {
                // Subset id 0 is .notdef: a character no face has.
                assert_ne!(id, 0, "{text:?} has a character no font covers");
                assert!(face < faces.list.len());
            }
        }
        // The CJK text is set in another face than the Latin text.
        let latin = glyphs(&t.line("abc", false, 7.5, 1000.0))[0].0;
        let cjk = glyphs(&t.line("密码", false, 7.5, 1000.0))[0].0;
        assert_ne!(latin, cjk);
    }

    #[test]
    fn arabic_is_joined_and_right_to_left() {
        let mut t = Typesetter::new();
        let faces = t.faces.expect("fonts installed");
        // The same letter alone and inside a word takes different glyphs
        // (its isolated and medial forms).
        let alone = glyphs(&t.line("ب", false, 7.5, 1000.0));
        let inside = glyphs(&t.line("ببب", false, 7.5, 1000.0));
        assert_eq!(inside.len(), 3);
        assert_ne!(alone[0], inside[1]);
        // Right to left: "ab" then an Arabic word: the Latin glyphs come first
        // on the page (visual order), the word's last letter (final form)
        // is the first of the Arabic glyphs.
        let runs = shape(faces, &faces.regular, "ab بت");
        let first = &runs[0].glyphs[0];
        assert_eq!(first.text, 0..1);
        let arabic = runs.last().unwrap();
        assert_eq!(arabic.glyphs.first().unwrap().text.start, "ab ب".len());
    }

    #[test]
    fn long_text_is_cut_to_the_width_with_an_ellipsis() {
        let mut t = Typesetter::new();
        let faces = t.faces.expect("fonts installed");
        let text = "Пароль изменён ".repeat(20);
        let line = t.line(&text, false, 7.5, 100.0);
        let Line::Shaped(runs) = &line else {
            panic!("shaped")
        };
        // Every kept glyph maps back to text; the last three are dots.
        let used = t.used_faces().next().unwrap().1;
        let texts: Vec<&str> = runs
            .iter()
            .flat_map(|r| &r.glyphs)
            .map(|g| used.unicode.get(&g.0).map(String::as_str).unwrap_or(""))
            .collect();
        let shown: String = texts.concat();
        assert!(shown.ends_with("..."), "{shown}");
        assert!(shown.starts_with("Пароль"), "{shown}");
        let measured = runs_width(&shape(faces, &faces.regular, &shown)) * 7.5 / 1000.0;
        assert!(measured <= 100.0, "{measured}");
        assert!(measured > 80.0, "{measured}");
    }

    #[test]
    fn without_fonts_text_is_win_ansi() {
        assert_eq!(win_ansi("Zürich – 5 €"), b"Z\xfcrich \x96 5 \x80".to_vec());
        assert_eq!(win_ansi("日本"), b"??".to_vec());
        let mut t = Typesetter::standard();
        assert!(!t.embeds_fonts());
        let Line::Standard(short) = t.line("short", false, 7.5, 100.0) else {
            panic!("standard")
        };
        assert_eq!(short, b"short");
        let Line::Standard(cut) = t.line(&"x".repeat(200), false, 7.5, 40.0) else {
            panic!("standard")
        };
        assert!(cut.ends_with(b"..."));
    }
}
