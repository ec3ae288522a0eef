//! Plain-text tables as the reference product prints them: a header row, a
//! row of dashes as wide as each column, then the rows; one space between
//! columns and no trailing spaces.

/// Renders `rows` under `headers`. Widths are counted in characters.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count()));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = String::new();
    out.push_str(&line(headers.iter().map(|h| h.to_string()).collect()));
    out.push('\n');
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    out.push('\n');
    for row in rows {
        let mut cells = row.clone();
        cells.resize(cols, String::new());
        out.push_str(&line(cells));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn lays_out_like_the_guide() {
        let t = super::render(
            &["Node Name", "Address", "Labels"],
            &[
                vec![
                    "ip-172-31-30-140".into(),
                    "127.0.0.1:3022".into(),
                    "env=aws".into(),
                ],
                vec!["n2".into(), "⟵ Tunnel".into(), String::new()],
            ],
        );
        assert_eq!(
            t,
            "Node Name        Address        Labels\n\
             ---------------- -------------- -------\n\
             ip-172-31-30-140 127.0.0.1:3022 env=aws\n\
             n2               ⟵ Tunnel\n"
        );
    }
}
