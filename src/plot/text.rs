//! Text in bitmaps: a backend wrapper that lays glyphs out with ab_glyph.

use super::*;

/// A backend that draws everything through `B` except text, which it lays
/// out with ab_glyph. plotters 0.3.7 draws each glyph at the integer pen
/// position without its left side bearing, which opens gaps inside words
/// ("To ken", "token 1 0"); here each glyph sits at its kerned, sub-pixel
/// place. (SVG text is laid out by the viewer, so SVGs need no such fix.)
pub(super) struct Crisp<B>(pub(super) B);

pub(super) type BackendResult<E> = std::result::Result<(), DrawingErrorKind<E>>;

impl<B: DrawingBackend> DrawingBackend for Crisp<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> BackendResult<B::ErrorType> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> BackendResult<B::ErrorType> {
        self.0.present()
    }
    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> BackendResult<B::ErrorType> {
        self.0.draw_pixel(p, c)
    }
    // Lines and rectangles as `B` draws them (its own fast paths).
    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> BackendResult<B::ErrorType> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        style: &S,
        fill: bool,
    ) -> BackendResult<B::ErrorType> {
        self.0.draw_rect(a, b, style, fill)
    }
    /// Lays `text` out kerned (as plotters measures it), relative to its
    /// anchor: a `Top` anchor is the top of the capitals, `Center` their middle.
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> BackendResult<B::ErrorType> {
        let Ok(font) = font() else {
            return self.0.draw_text(text, style, pos);
        };
        let f = font.as_scaled(style.size() as f32);
        let (mut pen, mut prev) = (0.0, None);
        let glyphs: Vec<_> = text
            .chars()
            .map(|c| {
                let id = f.glyph_id(c);
                pen += prev.map_or(0.0, |p| f.kern(p, id));
                prev = Some(id);
                let at = pen;
                pen += f.h_advance(id);
                (id, at)
            })
            .collect();
        let x0 = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -pen / 2.0,
            HPos::Right => -pen,
        };
        let cap = f
            .font()
            .outline(f.glyph_id('H'))
            .map_or(0.7 * f.scale().y, |o| o.bounds.min.y * f.v_scale_factor());
        let baseline = match style.anchor().v_pos {
            VPos::Top => cap,
            VPos::Center => cap / 2.0,
            VPos::Bottom => f.descent(),
        };
        let (color, turn, (w, h)) = (style.color(), style.transform(), self.get_size());
        let mut result = Ok(());
        for (id, at) in glyphs {
            let glyph = id.with_scale_and_position(f.scale(), point(x0 + at, baseline));
            let Some(g) = f.outline_glyph(glyph) else {
                continue;
            };
            let b = g.px_bounds();
            g.draw(|x, y, a| {
                let (dx, dy) = turn.transform(b.min.x as i32 + x as i32, b.min.y as i32 + y as i32);
                let (x, y) = (pos.0 + dx, pos.1 + dy);
                if result.is_ok() && x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                    let alpha = color.alpha * f64::from(a);
                    let rgb = color.rgb;
                    result = self.0.draw_pixel((x, y), BackendColor { alpha, rgb });
                }
            });
        }
        result
    }
}
