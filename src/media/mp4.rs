//! Reads an MP4's video track from its sample table, in-process: the frame count, codec and
//! coded size of an encoded chunk, without paying ~80 ms for an ffprobe start per file.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mp4Video {
    pub samples: u64,
    /// ffprobe's codec name for the sample entry (h264, hevc, av1, vp9), or the fourcc.
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// The RFC 6381 codec string players need (e.g. `avc1.64001F`), for H.264 and H.265.
    pub codec_string: Option<String>,
}

const MAX_MOOV: u64 = 64 << 20;

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

/// Finds the first video track; Ok(None) if the file is MP4 but has none. Every top-level
/// box must fit in the file, so a cut-short `mdat` is an error wherever `moov` sits.
pub fn read_video_track(path: &Path) -> std::io::Result<Option<Mp4Video>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut pos = 0u64;
    let mut moov = None;
    while pos + 8 <= len {
        f.seek(SeekFrom::Start(pos))?;
        let mut head = [0u8; 16];
        f.read_exact(&mut head[..8])?;
        let mut size = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        let mut header = 8;
        if size == 1 {
            f.read_exact(&mut head[8..16])?;
            size = u64::from_be_bytes([
                head[8], head[9], head[10], head[11], head[12], head[13], head[14], head[15],
            ]);
            header = 16;
        } else if size == 0 {
            size = len - pos;
        }
        if size < header || pos + size > len {
            return Err(bad("truncated or malformed MP4 box"));
        }
        if &head[4..8] == b"moov" {
            if size > MAX_MOOV {
                return Err(bad("moov box too large"));
            }
            let mut body = vec![0u8; (size - header) as usize];
            f.read_exact(&mut body)?;
            moov = Some(body);
        }
        pos += size;
    }
    if pos != len {
        return Err(bad("trailing bytes after the last MP4 box"));
    }
    video_track(&moov.ok_or_else(|| bad("no moov box"))?)
}

/// Iterates the child boxes of a payload as (type, body).
fn boxes(mut data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 8 {
            return None;
        }
        let size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let kind = [data[4], data[5], data[6], data[7]];
        if size < 8 || size > data.len() {
            return None;
        }
        let body = &data[8..size];
        data = &data[size..];
        Some((kind, body))
    })
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data).find(|(k, _)| k == kind).map(|(_, b)| b)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

/// `avc1.PPCCLL` from avcC; `hvc1.<space><profile>.<compat>.<tier><level>.<constraints>`
/// from hvcC (ISO/IEC 14496-15 annex E).
fn codec_string(fourcc: &[u8], config: &[u8]) -> Option<String> {
    let name = String::from_utf8_lossy(fourcc);
    match fourcc {
        b"avc1" | b"avc3" => {
            let c = child(config, b"avcC")?;
            Some(format!(
                "{name}.{:02X}{:02X}{:02X}",
                c.get(1)?,
                c.get(2)?,
                c.get(3)?
            ))
        }
        b"hvc1" | b"hev1" => {
            let c = child(config, b"hvcC")?;
            let b1 = *c.get(1)?;
            let space = ["", "A", "B", "C"][usize::from(b1 >> 6)];
            let tier = if b1 & 0x20 != 0 { 'H' } else { 'L' };
            let compat = be32(c, 2)?.reverse_bits();
            let mut constraints: Vec<u8> = c.get(6..12)?.to_vec();
            while constraints.last() == Some(&0) {
                constraints.pop();
            }
            let constraints: String = constraints.iter().map(|b| format!(".{b:X}")).collect();
            Some(format!(
                "{name}.{space}{}.{compat:X}.{tier}{}{constraints}",
                b1 & 0x1F,
                c.get(12)?
            ))
        }
        _ => None,
    }
}

fn video_track(moov: &[u8]) -> std::io::Result<Option<Mp4Video>> {
    for (kind, trak) in boxes(moov) {
        if &kind != b"trak" {
            continue;
        }
        let Some(mdia) = child(trak, b"mdia") else {
            continue;
        };
        // hdlr: version/flags, pre_defined, then the handler type.
        if child(mdia, b"hdlr").and_then(|h| h.get(8..12)) != Some(b"vide") {
            continue;
        }
        let stbl = child(mdia, b"minf")
            .and_then(|m| child(m, b"stbl"))
            .ok_or_else(|| bad("video track without a sample table"))?;
        // stsz: version/flags, sample_size, sample_count.
        let samples = child(stbl, b"stsz")
            .and_then(|s| be32(s, 8))
            .ok_or_else(|| bad("no stsz"))?;
        // stsd: version/flags, entry count, then the first sample entry (size, format, ...).
        let stsd = child(stbl, b"stsd").ok_or_else(|| bad("no stsd"))?;
        let entry = stsd.get(8..).ok_or_else(|| bad("empty stsd"))?;
        let fourcc = entry.get(4..8).ok_or_else(|| bad("short sample entry"))?;
        let codec = match fourcc {
            b"avc1" | b"avc3" => "h264".to_string(),
            b"hvc1" | b"hev1" => "hevc".to_string(),
            b"av01" => "av1".to_string(),
            b"vp09" => "vp9".to_string(),
            other => String::from_utf8_lossy(other).into_owned(),
        };
        // VisualSampleEntry: 8 header + 8 reserved/index + 16 pre-defined, then width, height.
        let width = be16(entry, 32).ok_or_else(|| bad("short sample entry"))?;
        let height = be16(entry, 34).ok_or_else(|| bad("short sample entry"))?;
        let entry_size = be32(entry, 0).map_or(0, |n| n as usize);
        // The sample entry's own boxes follow its 78 bytes of fixed fields.
        let config = entry.get(86..entry_size.min(entry.len())).unwrap_or(&[]);
        return Ok(Some(Mp4Video {
            samples: u64::from(samples),
            codec_string: codec_string(fourcc, config),
            codec,
            width: width.into(),
            height: height.into(),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn sample_mp4(samples: u32) -> Vec<u8> {
        let hdlr = bx(
            b"hdlr",
            &[0, 0, 0, 0, 0, 0, 0, 0, b'v', b'i', b'd', b'e', 0, 0, 0, 0],
        );
        let mut stsz_body = vec![0u8; 8];
        stsz_body.extend_from_slice(&samples.to_be_bytes());
        let mut entry = vec![0u8; 36];
        entry[4..8].copy_from_slice(b"avc1");
        entry[32..34].copy_from_slice(&256u16.to_be_bytes());
        entry[34..36].copy_from_slice(&144u16.to_be_bytes());
        let mut stsd_body = vec![0, 0, 0, 0, 0, 0, 0, 1];
        stsd_body.extend_from_slice(&entry);
        let stbl = bx(
            b"stbl",
            &[bx(b"stsd", &stsd_body), bx(b"stsz", &stsz_body)].concat(),
        );
        let mdia = bx(b"mdia", &[hdlr, bx(b"minf", &stbl)].concat());
        let moov = bx(b"moov", &bx(b"trak", &mdia));
        [bx(b"ftyp", b"isom"), bx(b"mdat", &[0u8; 32]), moov].concat()
    }

    #[test]
    fn codec_strings_come_from_the_decoder_configuration() {
        let avcc = bx(b"avcC", &[1, 0x64, 0x00, 0x1F, 0xFF]);
        assert_eq!(codec_string(b"avc1", &avcc).as_deref(), Some("avc1.64001F"));
        let mut hvcc = vec![1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 90];
        hvcc.extend([0; 10]);
        let hvcc = bx(b"hvcC", &hvcc);
        assert_eq!(
            codec_string(b"hvc1", &hvcc).as_deref(),
            Some("hvc1.1.6.L90.90")
        );
        assert_eq!(codec_string(b"vp09", &[]), None);
    }

    #[test]
    fn a_cut_mdat_after_a_leading_moov_is_refused() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("faststart.mp4");
        let whole = sample_mp4(75);
        // Reorder to ftyp, moov, mdat (faststart), then cut into the mdat.
        let (ftyp, rest) = whole.split_at(12);
        let (mdat, moov) = rest.split_at(40);
        let faststart = [ftyp, moov, mdat].concat();
        std::fs::write(&p, &faststart)?;
        assert_eq!(read_video_track(&p)?.map(|v| v.samples), Some(75));
        std::fs::write(&p, &faststart[..faststart.len() - 10])?;
        assert!(read_video_track(&p).is_err());
        Ok(())
    }

    #[test]
    fn reads_the_sample_table_and_refuses_damage() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("a.mp4");
        std::fs::write(&p, sample_mp4(75))?;
        let v = read_video_track(&p)?;
        assert_eq!(
            v,
            Some(Mp4Video {
                samples: 75,
                codec: "h264".into(),
                width: 256,
                height: 144,
                codec_string: None,
            })
        );
        let bytes = sample_mp4(75);
        for cut in [4, 20, bytes.len() - 3] {
            std::fs::write(&p, &bytes[..cut])?;
            assert!(read_video_track(&p).is_err(), "cut at {cut}");
        }
        std::fs::write(&p, b"not an mp4 at all, just text")?;
        assert!(read_video_track(&p).is_err());
        Ok(())
    }
}
