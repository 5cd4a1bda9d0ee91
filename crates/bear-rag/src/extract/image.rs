//! Images read by OCR: PNG, JPEG, BMP and WebP through `image`, TIFF through `tiff` with
//! every page of a multi-page file. Each image's size is read from its header and checked
//! against `rag.max_image_pixels` before any pixel is decoded (a small file declaring
//! 100,000 x 100,000 pixels is refused, not allocated).

use std::io::Cursor;

use super::ocr::{GreyPage, PageRead, read_pages};
use super::{DocMeta, Extracted, Format, Limits, Refusal};

/// The text of an image file, one page per image (a TIFF's pages in order).
pub(super) fn extract(bytes: &[u8], format: Format, limits: &Limits) -> Result<Extracted, Refusal> {
    let Some(setup) = limits.ocr.as_ref() else {
        return Err(Refusal::OcrUnavailable);
    };
    let reads = if format == Format::Tiff {
        let mut pages = TiffPages::open(bytes, limits)?;
        match pages.count()? {
            // One page: its problem is the file's.
            1 => read_pages(setup, std::iter::once((1, Ok(pages.page()?))), 1),
            total => read_pages(setup, std::iter::from_fn(|| pages.next_page()), total),
        }
    } else {
        let page = decode(bytes, format, limits)?;
        read_pages(setup, std::iter::once((1, Ok(page))), 1)
    };
    Ok(assemble(reads, DocMeta::default()))
}

/// Joins OCR'd pages into a paged document.
pub(super) fn assemble(reads: Vec<PageRead>, mut meta: DocMeta) -> Extracted {
    let mut out = Extracted::default();
    for r in reads {
        out.page_starts.push(out.text.len());
        out.text.push_str(r.text.trim_end());
        out.text.push_str("\n\x0c");
        out.ocr_pages.push(r.info);
    }
    meta.page_count = Some(out.page_starts.len() as u32);
    out.meta = meta;
    out
}

fn too_large(width: u64, height: u64, limits: &Limits) -> Option<Refusal> {
    (width.saturating_mul(height) > limits.max_image_pixels).then_some(Refusal::ImageTooLarge {
        width,
        height,
        limit: limits.max_image_pixels,
    })
}

fn malformed(format: Format, detail: impl std::fmt::Display) -> Refusal {
    Refusal::Malformed {
        format: format.label().into(),
        detail: detail.to_string(),
    }
}

/// Decodes one PNG, JPEG, BMP or WebP image to grey.
fn decode(bytes: &[u8], format: Format, limits: &Limits) -> Result<GreyPage, Refusal> {
    use image::ImageDecoder;
    let kind = match format {
        Format::Png => image::ImageFormat::Png,
        Format::Jpeg => image::ImageFormat::Jpeg,
        Format::Bmp => image::ImageFormat::Bmp,
        _ => image::ImageFormat::WebP,
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), kind);
    let mut caps = image::Limits::default();
    caps.max_alloc = Some(
        limits
            .max_image_pixels
            .saturating_mul(4)
            .saturating_add(1 << 20),
    );
    reader.limits(caps);
    let decoder = reader
        .into_decoder()
        .map_err(|e| image_error(format, e, limits))?;
    let (w, h) = decoder.dimensions();
    if let Some(r) = too_large(w as u64, h as u64, limits) {
        return Err(r);
    }
    let image =
        image::DynamicImage::from_decoder(decoder).map_err(|e| image_error(format, e, limits))?;
    let grey = image.into_luma8();
    Ok(GreyPage {
        width: w,
        height: h,
        dpi: 0,
        pixels: grey.into_raw(),
    })
}

fn image_error(format: Format, e: image::ImageError, limits: &Limits) -> Refusal {
    match e {
        image::ImageError::Limits(_) => Refusal::ImageTooLarge {
            width: 0,
            height: 0,
            limit: limits.max_image_pixels,
        },
        other => malformed(format, other),
    }
}

/// A TIFF's pages, decoded one at a time.
struct TiffPages<'a> {
    decoder: tiff::decoder::Decoder<Cursor<&'a [u8]>>,
    limits: &'a Limits,
    next: u32,
    done: bool,
}

impl<'a> TiffPages<'a> {
    fn open(bytes: &'a [u8], limits: &'a Limits) -> Result<Self, Refusal> {
        let mut caps = tiff::decoder::Limits::default();
        let max = usize::try_from(limits.max_image_pixels.saturating_mul(8)).unwrap_or(usize::MAX);
        caps.decoding_buffer_size = max;
        caps.intermediate_buffer_size = max;
        let decoder = tiff::decoder::Decoder::new(Cursor::new(bytes))
            .map_err(|e| malformed(Format::Tiff, e))?
            .with_limits(caps);
        Ok(Self {
            decoder,
            limits,
            next: 1,
            done: false,
        })
    }

    /// Counts the pages by walking the directory chain (headers only), then rewinds.
    fn count(&mut self) -> Result<usize, Refusal> {
        let mut n = 1usize;
        while self.decoder.more_images() {
            if n >= self.limits.max_pages {
                return Err(Refusal::TooManyPages {
                    pages: n + 1,
                    limit: self.limits.max_pages,
                });
            }
            self.decoder
                .next_image()
                .map_err(|e| malformed(Format::Tiff, e))?;
            n += 1;
        }
        self.decoder
            .seek_to_image(0)
            .map_err(|e| malformed(Format::Tiff, e))?;
        Ok(n)
    }

    fn next_page(&mut self) -> Option<(u32, Result<GreyPage, String>)> {
        if self.done {
            return None;
        }
        let n = self.next;
        let page = self.page().map_err(|r| r.to_string());
        self.next += 1;
        self.done = !self.decoder.more_images() || self.decoder.next_image().is_err();
        Some((n, page))
    }

    fn page(&mut self) -> Result<GreyPage, Refusal> {
        let d = &mut self.decoder;
        let (w, h) = d.dimensions().map_err(|e| malformed(Format::Tiff, e))?;
        if let Some(r) = too_large(w as u64, h as u64, self.limits) {
            return Err(r);
        }
        let colour = d.colortype().map_err(|e| malformed(Format::Tiff, e))?;
        let dpi = match d.find_tag(tiff::tags::Tag::XResolution) {
            Ok(Some(tiff::decoder::ifd::Value::Rational(n, q))) if q > 0 => n / q,
            _ => 0,
        };
        let data = d.read_image().map_err(|e| malformed(Format::Tiff, e))?;
        let pixels = tiff_grey(data, colour, w, h)?;
        Ok(GreyPage {
            width: w,
            height: h,
            dpi: if (50..=2400).contains(&dpi) { dpi } else { 0 },
            pixels,
        })
    }
}

/// Grey pixels from a decoded TIFF page (already black-is-zero: `tiff` inverts white-is-zero).
fn tiff_grey(
    data: tiff::decoder::DecodingResult,
    colour: tiff::ColorType,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, Refusal> {
    use tiff::ColorType as C;
    use tiff::decoder::DecodingResult as D;
    let unsupported = || malformed(Format::Tiff, format!("colour type {colour:?} is not read"));
    let (w, h) = (width as usize, height as usize);
    match (data, colour) {
        (D::U8(bits), C::Gray(1)) => Ok(unpack_bits(&bits, w, h)),
        (D::U8(s), C::Gray(8)) => Ok(super::ocr::grey_from(&s, 1)),
        (D::U8(s), C::GrayA(8)) => Ok(super::ocr::grey_from(&s, 2)),
        (D::U8(s), C::RGB(8)) => Ok(super::ocr::grey_from(&s, 3)),
        (D::U8(s), C::RGBA(8)) => Ok(super::ocr::grey_from(&s, 4)),
        (D::U8(s), C::CMYK(8)) => Ok(s
            .chunks_exact(4)
            .map(|p| {
                let ink = (p[0] as u32 * 77 + p[1] as u32 * 150 + p[2] as u32 * 29) >> 8;
                255u32.saturating_sub(ink + p[3] as u32) as u8
            })
            .collect()),
        (D::U16(s), C::Gray(16)) => Ok(s.iter().map(|v| (v >> 8) as u8).collect()),
        (D::U16(s), C::RGB(16)) => {
            let eight: Vec<u8> = s.iter().map(|v| (v >> 8) as u8).collect();
            Ok(super::ocr::grey_from(&eight, 3))
        }
        _ => Err(unsupported()),
    }
    .and_then(|p| {
        if p.len() == w * h {
            Ok(p)
        } else {
            Err(malformed(
                Format::Tiff,
                "the page holds fewer pixels than it declares",
            ))
        }
    })
}

/// One bit per pixel (rows padded to whole bytes, 1 white) to 8-bit grey.
fn unpack_bits(bits: &[u8], width: usize, height: usize) -> Vec<u8> {
    let stride = width.div_ceil(8);
    let mut out = Vec::with_capacity(width * height);
    for row in bits.chunks(stride).take(height) {
        for x in 0..width {
            let set = row.get(x / 8).is_some_and(|b| b & (0x80 >> (x % 8)) != 0);
            out.push(if set { 255 } else { 0 });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_unpack_row_by_row() {
        // 10 pixels wide: two bytes per row; 1 is white.
        let bits = [0b1010_0000, 0b0100_0000, 0xff, 0xc0];
        let grey = unpack_bits(&bits, 10, 2);
        assert_eq!(&grey[..10], &[255, 0, 255, 0, 0, 0, 0, 0, 0, 255]);
        assert!(grey[10..].iter().all(|&p| p == 255));
    }
}
