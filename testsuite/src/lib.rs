//! Shared helpers for flexc's file-driven tests.
