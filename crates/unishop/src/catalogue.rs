//! The sample catalogue: deterministic products (the same `N` always gives the
//! same products) and the simple SVG images they point to.

/// Kinds of product, each with its image colour.
pub const KINDS: &[(&str, &str)] = &[
    ("lantern", "#e8a33d"),
    ("mug", "#4f86c6"),
    ("backpack", "#6a8d3a"),
    ("notebook", "#c0504d"),
    ("compass", "#8064a2"),
    ("kettle", "#4bacc6"),
    ("blanket", "#d46a9f"),
    ("bottle", "#2e8b57"),
    ("rope", "#a0522d"),
    ("whistle", "#b8860b"),
    ("flashlight", "#708090"),
    ("tent", "#3d7a7a"),
];

const ADJECTIVES: &[&str] = &[
    "Sturdy",
    "Classic",
    "Compact",
    "Deluxe",
    "Trusty",
    "Featherweight",
    "Rugged",
    "Harbour",
    "Coastal",
    "Northern",
];

/// One product of the sample catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleProduct {
    /// Stock keeping unit, unique (`UNI-00001`).
    pub sku: String,
    /// Display name.
    pub name: String,
    /// One sentence.
    pub description: String,
    /// Price in cents.
    pub price_cents: u32,
    /// Image key in the bucket.
    pub image_key: String,
}

/// The image key of a kind of product.
pub fn image_key(kind: &str) -> String {
    format!("images/{kind}.svg")
}

/// Product number `i` (from 1) of the sample catalogue.
pub fn sample_product(i: u32) -> SampleProduct {
    let n = (i.max(1) - 1) as usize;
    let (kind, _) = KINDS[n % KINDS.len()];
    let adjective = ADJECTIVES[(n / KINDS.len()) % ADJECTIVES.len()];
    let series = n / (KINDS.len() * ADJECTIVES.len());
    let mut title = kind.to_string();
    title[..1].make_ascii_uppercase();
    let mut name = format!("{adjective} {title}");
    if series > 0 {
        name.push_str(&format!(" Mk {}", series + 1));
    }
    SampleProduct {
        sku: format!("UNI-{i:05}"),
        description: format!(
            "A {} {kind} from the Unishop sample catalogue.",
            adjective.to_lowercase()
        ),
        name,
        price_cents: 500 + (i.wrapping_mul(7919) % 9500),
        image_key: image_key(kind),
    }
}

/// A simple SVG picture of a kind of product: a coloured card with a shape and its name.
pub fn svg_image(kind: &str, color: &str) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300" viewBox="0 0 400 300" role="img" aria-label="{kind}">
  <rect width="400" height="300" rx="18" fill="#f4f1ea"/>
  <circle cx="200" cy="125" r="78" fill="{color}" opacity="0.9"/>
  <rect x="150" y="95" width="100" height="60" rx="12" fill="#ffffff" opacity="0.85"/>
  <text x="200" y="136" font-family="sans-serif" font-size="34" text-anchor="middle" fill="{color}">{initial}</text>
  <text x="200" y="260" font-family="sans-serif" font-size="30" text-anchor="middle" fill="#333333">{kind}</text>
</svg>
"##,
        initial = kind[..1].to_ascii_uppercase(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_are_deterministic_and_unique() {
        assert_eq!(sample_product(1), sample_product(1));
        assert_eq!(sample_product(1).name, "Sturdy Lantern");
        assert_eq!(sample_product(13).name, "Classic Lantern");
        let n = (KINDS.len() * ADJECTIVES.len()) as u32;
        assert_eq!(sample_product(n + 1).name, "Sturdy Lantern Mk 2");
        let names: std::collections::HashSet<_> =
            (1..=500).map(|i| sample_product(i).name).collect();
        assert_eq!(names.len(), 500);
        for i in 1..=500 {
            let p = sample_product(i);
            assert!((500..10_000).contains(&p.price_cents));
            assert!(KINDS.iter().any(|(k, _)| p.image_key == image_key(k)));
        }
    }

    #[test]
    fn images_are_svg() {
        let s = svg_image("mug", "#4f86c6");
        assert!(s.starts_with("<svg ") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains(">mug</text>") && s.contains(">M</text>"));
    }
}
