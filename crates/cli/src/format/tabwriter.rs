//! Go's `text/tabwriter` as the docker CLI configures it (minwidth 10, tabwidth 1, padding 3,
//! pad with spaces, no flags): column blocks, cell widths in runes, last cell unpadded.

/// Aligns tab-separated text.
pub(crate) fn align(text: &str) -> String {
    align_with(text, 10, 3)
}

/// Aligns with explicit minimum width and padding (docker uses 10/3 for tables).
pub(crate) fn align_with(text: &str, minwidth: usize, padding: usize) -> String {
    let ends_nl = text.ends_with('\n');
    let body = if ends_nl {
        &text[..text.len() - 1]
    } else {
        text
    };
    let lines: Vec<Vec<&str>> = body.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut w = Writer {
        lines: &lines,
        minwidth,
        padding,
        widths: Vec::new(),
        out: String::new(),
    };
    w.format(0, lines.len());
    if !ends_nl {
        // The final line had no newline; don't invent one.
        w.out.pop();
    }
    w.out
}

struct Writer<'a> {
    lines: &'a [Vec<&'a str>],
    minwidth: usize,
    padding: usize,
    widths: Vec<usize>,
    out: String,
}

fn width(s: &str) -> usize {
    s.chars().count()
}

impl Writer<'_> {
    /// Go's recursive column-block algorithm.
    fn format(&mut self, line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut line0 = line0;
        let mut this = line0;
        while this < line1 {
            // A cell exists in this column only if a later tab terminates it.
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            self.write_lines(line0, this);
            line0 = this;
            let mut w = self.minwidth;
            while this < line1 && column + 1 < self.lines[this].len() {
                w = w.max(width(self.lines[this][column]) + self.padding);
                this += 1;
            }
            self.widths.push(w);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for line in &self.lines[line0..line1] {
            for (j, cell) in line.iter().enumerate() {
                self.out.push_str(cell);
                if j + 1 < line.len() {
                    if let Some(w) = self.widths.get(j) {
                        let pad = w.saturating_sub(width(cell));
                        self.out.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            self.out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_ps_header_layout() {
        let t = "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES\n";
        assert_eq!(
            align(t),
            "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
        );
    }

    #[test]
    fn widest_cell_plus_three() {
        let t = "A\tB\nlong-cell-value\tx\n";
        assert_eq!(align(t), "A                 B\nlong-cell-value   x\n");
        // Unicode counts as one column per char.
        assert_eq!(align("\"sh -c 'exi…\"\tz\n"), "\"sh -c 'exi…\"   z\n");
    }

    #[test]
    fn blocks_break_on_lines_without_the_column() {
        let t = "a\tb\tc\nno tabs here\naaaaaaaaaaaaa\tb\n";
        assert_eq!(
            align(t),
            "a         b\tc\nno tabs here\naaaaaaaaaaaaa   b\n".replace("b\tc", "b         c")
        );
    }

    #[test]
    fn trailing_text_without_newline() {
        assert_eq!(align("a\tb"), "a         b");
        assert_eq!(align(""), "");
    }
}
