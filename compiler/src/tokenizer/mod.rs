//! Tokenizers built from model files: SentencePiece-style, GPT-2 byte-level BPE, WordPiece.
