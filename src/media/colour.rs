//! Colour per rung: HDR tone-mapped to SDR, kept at 10 bits with its metadata, or refused;
//! the pixel format, the tags written, and the mastering metadata each encoder takes.
//! Never an 8-bit output tagged PQ or HLG; every output says what its colours are.

use serde::{Deserialize, Serialize};

use super::probe::{Colour, Hdr, Mastering, MasteringDisplay};
use super::profiles::Codec;

/// What a rung does with an HDR source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HdrPolicy {
    /// 10-bit HDR with the source's transfer, primaries and mastering metadata.
    Keep,
    /// SDR BT.709 (zscale linearises, `tonemap` compresses the highlights with Hable's curve).
    Tonemap,
    /// The job fails: this output must not be made from HDR.
    Refuse,
}

/// Bits per sample: 8, 10, or the source's (capped at 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "serde_json::Value")]
pub enum BitDepth {
    Eight,
    Ten,
    Source,
}

impl From<BitDepth> for serde_json::Value {
    fn from(d: BitDepth) -> Self {
        match d {
            BitDepth::Eight => 8.into(),
            BitDepth::Ten => 10.into(),
            BitDepth::Source => "source".into(),
        }
    }
}

impl<'de> Deserialize<'de> for BitDepth {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = BitDepth;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("8, 10 or `source`")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<BitDepth, E> {
                match n {
                    8 => Ok(BitDepth::Eight),
                    10 => Ok(BitDepth::Ten),
                    _ => Err(E::custom(format!("{n} bits: use 8, 10 or `source`"))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<BitDepth, E> {
                self.visit_u64(u64::try_from(n).unwrap_or(0))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<BitDepth, E> {
                match s {
                    "source" => Ok(BitDepth::Source),
                    "8" => Ok(BitDepth::Eight),
                    "10" => Ok(BitDepth::Ten),
                    other => Err(E::unknown_variant(other, &["8", "10", "source"])),
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// H.264 players (browsers) take 8-bit SDR only; the other codecs carry HDR.
pub fn default_policy(codec: Codec) -> HdrPolicy {
    match codec {
        Codec::H264 => HdrPolicy::Tonemap,
        Codec::H265 | Codec::Vp9 | Codec::Av1 => HdrPolicy::Keep,
    }
}

fn default_depth(codec: Codec) -> BitDepth {
    match codec {
        Codec::H264 => BitDepth::Eight,
        Codec::H265 | Codec::Vp9 | Codec::Av1 => BitDepth::Source,
    }
}

/// Everything a rung writes about colour, decided once per job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColourPlan {
    pub bit_depth: u32,
    /// The tone-map chain, run once on the source before the rungs split.
    pub tonemap: Option<String>,
    /// An SDR source's BT.601 matrix, converted to BT.709 by the rung's scaler.
    pub convert_matrix_from: Option<String>,
    pub primaries: String,
    pub transfer: String,
    pub matrix: String,
    /// Mastering display and light levels, written by the encoder.
    pub mastering: Option<Mastering>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ColourError {
    #[error("the source is HDR ({0}) and the profile says hdr: refuse")]
    Refused(&'static str),
    #[error("hdr: keep needs 10 bits (bit_depth: 10 or source); this profile asks for 8")]
    KeepNeedsTenBits,
}

pub fn hdr_name(hdr: Hdr) -> &'static str {
    match hdr {
        Hdr::Pq => "PQ, SMPTE ST 2084",
        Hdr::Hlg => "HLG, ARIB STD-B67",
    }
}

/// The chain that turns HDR into SDR BT.709 at `bits`. Input properties are stated, not read
/// from the frames, so a source tagged only in its container is read right.
fn tonemap_chain(source: &Colour, hdr: Hdr, bits: u32) -> String {
    let tin = match hdr {
        Hdr::Pq => "smpte2084",
        Hdr::Hlg => "arib-std-b67",
    };
    let pin = source.primaries.as_deref().unwrap_or("bt2020");
    let min = source.matrix.as_deref().unwrap_or("bt2020nc");
    format!(
        "zscale=tin={tin}:pin={pin}:min={min}:rin=tv:t=linear:npl=100,format=gbrpf32le,\
         zscale=p=bt709,tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format={}",
        pix_fmt(bits)
    )
}

/// The chain that shows an HDR source as 8-bit SDR (for previews); None for SDR.
pub fn sdr_preview_chain(source: &Colour) -> Option<String> {
    source.hdr().map(|hdr| tonemap_chain(source, hdr, 8))
}

fn pix_fmt(bits: u32) -> &'static str {
    if bits > 8 {
        "yuv420p10le"
    } else {
        "yuv420p"
    }
}

/// Whether the encoder writes mastering metadata into the bitstream (x265 SEI, SVT-AV1
/// metadata OBUs); ffmpeg 5.1's libx264 and libvpx wrappers have no way to.
fn writes_mastering(codec: Codec) -> bool {
    match codec {
        Codec::H265 | Codec::Av1 => true,
        Codec::H264 | Codec::Vp9 => false,
    }
}

const BT601: &[&str] = &["smpte170m", "bt470bg"];

/// Decides a rung's colour from its codec and settings and the source's colour. The second
/// value names what cannot be written, when something cannot.
pub fn plan_colour(
    codec: Codec,
    policy: Option<HdrPolicy>,
    depth: Option<BitDepth>,
    source: &Colour,
    mastering: Option<Mastering>,
) -> Result<(ColourPlan, Option<String>), ColourError> {
    let policy = policy.unwrap_or_else(|| default_policy(codec));
    let source_bits = source.bit_depth.clamp(8, 10);
    let keeps_hdr = source.hdr().is_some() && policy == HdrPolicy::Keep;
    let bits = match depth {
        Some(BitDepth::Eight) => 8,
        Some(BitDepth::Ten) => 10,
        Some(BitDepth::Source) => source_bits,
        None if keeps_hdr => 10,
        None => match default_depth(codec) {
            BitDepth::Eight => 8,
            BitDepth::Ten => 10,
            BitDepth::Source => source_bits,
        },
    };
    let Some(hdr) = source.hdr() else {
        return Ok((sdr(source, bits), None));
    };
    match policy {
        HdrPolicy::Refuse => Err(ColourError::Refused(hdr_name(hdr))),
        HdrPolicy::Keep if bits < 10 => Err(ColourError::KeepNeedsTenBits),
        HdrPolicy::Tonemap => Ok((
            ColourPlan {
                tonemap: Some(tonemap_chain(source, hdr, bits)),
                ..sdr(&Colour::default(), bits)
            },
            None,
        )),
        HdrPolicy::Keep => {
            let writes_metadata = writes_mastering(codec);
            let dropped = match (writes_metadata, mastering) {
                (false, Some(_)) => Some(format!(
                    "HDR mastering display and light levels: ffmpeg 5.1's {} encoder cannot \
                     write them (transfer and primaries are kept)",
                    codec.encoder()
                )),
                _ => None,
            };
            let plan = ColourPlan {
                bit_depth: bits,
                tonemap: None,
                convert_matrix_from: None,
                primaries: source.primaries.clone().unwrap_or_else(|| "bt2020".into()),
                transfer: source.transfer.clone().unwrap_or_default(),
                matrix: source.matrix.clone().unwrap_or_else(|| "bt2020nc".into()),
                mastering: mastering.filter(|_| writes_metadata),
            };
            Ok((plan, dropped))
        }
    }
}

/// SDR out: BT.709 transfer and matrix (a BT.601 matrix converted), the source's primaries
/// where it names SD ones, BT.709 otherwise.
fn sdr(source: &Colour, bits: u32) -> ColourPlan {
    let sd = |v: &Option<String>| v.as_deref().is_some_and(|m| BT601.contains(&m));
    ColourPlan {
        bit_depth: bits,
        tonemap: None,
        convert_matrix_from: sd(&source.matrix).then(|| "bt601".to_string()),
        primaries: match sd(&source.primaries) {
            true => source.primaries.clone().unwrap_or_default(),
            false => "bt709".into(),
        },
        transfer: "bt709".into(),
        matrix: "bt709".into(),
        mastering: None,
    }
}

/// What an 8-bit SDR rung writes (tests and untagged sources).
pub fn sdr_8bit() -> ColourPlan {
    sdr(&Colour::default(), 8)
}

fn x265_display(d: &MasteringDisplay) -> String {
    let xy = |p: [f64; 2]| {
        format!(
            "({},{})",
            (p[0] * 50000.0).round(),
            (p[1] * 50000.0).round()
        )
    };
    format!(
        "G{}B{}R{}WP{}L({},{})",
        xy(d.green),
        xy(d.blue),
        xy(d.red),
        xy(d.white),
        (d.max_luminance * 10000.0).round(),
        (d.min_luminance * 10000.0).round()
    )
}

fn svt_display(d: &MasteringDisplay) -> String {
    let xy = |p: [f64; 2]| format!("({:.4},{:.4})", p[0], p[1]);
    format!(
        "G{}B{}R{}WP{}L({:.4},{:.4})",
        xy(d.green),
        xy(d.blue),
        xy(d.red),
        xy(d.white),
        d.max_luminance,
        d.min_luminance
    )
}

impl ColourPlan {
    pub fn pix_fmt(&self) -> &'static str {
        pix_fmt(self.bit_depth)
    }

    pub fn is_hdr(&self) -> bool {
        matches!(self.transfer.as_str(), "smpte2084" | "arib-std-b67")
    }

    /// The output options that tag the stream (and the encoders' VUI, which they copy).
    pub fn tag_args(&self) -> Vec<String> {
        [
            ("-color_primaries", self.primaries.as_str()),
            ("-color_trc", self.transfer.as_str()),
            ("-colorspace", self.matrix.as_str()),
            ("-color_range", "tv"),
        ]
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()])
        .collect()
    }

    /// x265's `master-display` and `max-cll` (`:`-prefixed params), empty without metadata.
    pub fn x265_params(&self) -> String {
        let Some(m) = &self.mastering else {
            return String::new();
        };
        let mut p = String::new();
        if let Some(d) = &m.display {
            p.push_str(&format!(":master-display={}", x265_display(d)));
        }
        if let Some(l) = &m.light {
            p.push_str(&format!(":max-cll={},{}", l.max_content, l.max_average));
        }
        p
    }

    /// SVT-AV1's `mastering-display` and `content-light`, None without metadata.
    pub fn svtav1_params(&self) -> Option<String> {
        let m = self.mastering.as_ref()?;
        let mut p = Vec::new();
        if let Some(d) = &m.display {
            p.push(format!("mastering-display={}", svt_display(d)));
        }
        if let Some(l) = &m.light {
            p.push(format!("content-light={},{}", l.max_content, l.max_average));
        }
        (!p.is_empty()).then(|| p.join(":"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::probe::LightLevel;

    fn pq() -> Colour {
        Colour {
            primaries: Some("bt2020".into()),
            transfer: Some("smpte2084".into()),
            matrix: Some("bt2020nc".into()),
            range: Some("tv".into()),
            bit_depth: 10,
        }
    }

    fn hdr10() -> Mastering {
        Mastering {
            display: Some(MasteringDisplay {
                red: [0.68, 0.32],
                green: [0.265, 0.69],
                blue: [0.15, 0.06],
                white: [0.3127, 0.329],
                max_luminance: 1000.0,
                min_luminance: 0.0001,
            }),
            light: Some(LightLevel {
                max_content: 1000,
                max_average: 400,
            }),
        }
    }

    #[test]
    fn h264_tonemaps_hdr_and_the_others_keep_it_with_metadata() -> Result<(), ColourError> {
        let (h264, _) = plan_colour(Codec::H264, None, None, &pq(), Some(hdr10()))?;
        assert_eq!((h264.bit_depth, h264.transfer.as_str()), (8, "bt709"));
        assert!(h264
            .tonemap
            .as_deref()
            .is_some_and(|t| t.contains("tin=smpte2084")));
        assert!(!h264.is_hdr() && h264.mastering.is_none());

        let (h265, dropped) = plan_colour(Codec::H265, None, None, &pq(), Some(hdr10()))?;
        assert_eq!((h265.bit_depth, h265.pix_fmt()), (10, "yuv420p10le"));
        assert!(h265.is_hdr() && h265.tonemap.is_none() && dropped.is_none());
        assert_eq!(
            h265.x265_params(),
            ":master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)\
             :max-cll=1000,400"
        );
        let (av1, _) = plan_colour(Codec::Av1, None, None, &pq(), Some(hdr10()))?;
        assert_eq!(
            av1.svtav1_params().as_deref(),
            Some("mastering-display=G(0.2650,0.6900)B(0.1500,0.0600)R(0.6800,0.3200)WP(0.3127,0.3290)L(1000.0000,0.0001):content-light=1000,400")
        );
        let (vp9, dropped) = plan_colour(Codec::Vp9, None, None, &pq(), Some(hdr10()))?;
        assert!(vp9.is_hdr() && vp9.mastering.is_none());
        assert!(dropped.is_some_and(|d| d.contains("libvpx-vp9")));
        Ok(())
    }

    #[test]
    fn never_eight_bits_tagged_hdr_and_refuse_refuses() {
        let eight = plan_colour(
            Codec::H265,
            Some(HdrPolicy::Keep),
            Some(BitDepth::Eight),
            &pq(),
            None,
        );
        assert_eq!(eight, Err(ColourError::KeepNeedsTenBits));
        let refused = plan_colour(Codec::H265, Some(HdrPolicy::Refuse), None, &pq(), None);
        assert!(matches!(refused, Err(ColourError::Refused(_))));
        // An explicit keep on H.264 gets 10 bits.
        let kept = plan_colour(Codec::H264, Some(HdrPolicy::Keep), None, &pq(), None);
        assert!(kept.is_ok_and(|(p, _)| p.bit_depth == 10 && p.is_hdr()));
        // Refuse has nothing to refuse on SDR.
        let sdr_src = Colour {
            bit_depth: 8,
            ..Colour::default()
        };
        assert!(plan_colour(Codec::H265, Some(HdrPolicy::Refuse), None, &sdr_src, None).is_ok());
    }

    #[test]
    fn sdr_gets_bt709_tags_and_sd_matrices_are_converted() -> Result<(), ColourError> {
        let untagged = Colour {
            bit_depth: 8,
            ..Colour::default()
        };
        let (p, _) = plan_colour(Codec::H264, None, None, &untagged, None)?;
        assert_eq!(
            p.tag_args(),
            [
                "-color_primaries",
                "bt709",
                "-color_trc",
                "bt709",
                "-colorspace",
                "bt709",
                "-color_range",
                "tv"
            ]
        );
        let sd = Colour {
            primaries: Some("smpte170m".into()),
            matrix: Some("smpte170m".into()),
            bit_depth: 8,
            ..Colour::default()
        };
        let (p, _) = plan_colour(Codec::H264, None, None, &sd, None)?;
        assert_eq!(p.convert_matrix_from.as_deref(), Some("bt601"));
        assert_eq!(
            (p.matrix.as_str(), p.primaries.as_str()),
            ("bt709", "smpte170m")
        );
        let ten = Colour {
            bit_depth: 10,
            ..Colour::default()
        };
        let (p, _) = plan_colour(Codec::H265, None, None, &ten, None)?;
        assert_eq!(p.bit_depth, 10, "h265 follows the source");
        let (p, _) = plan_colour(Codec::H264, None, None, &ten, None)?;
        assert_eq!(p.bit_depth, 8, "h264 stays 8-bit for players");
        let depth: BitDepth =
            serde_yaml::from_str("10").map_err(|_| ColourError::KeepNeedsTenBits)?;
        assert_eq!(depth, BitDepth::Ten);
        assert!(serde_yaml::from_str::<BitDepth>("12").is_err());
        Ok(())
    }
}
