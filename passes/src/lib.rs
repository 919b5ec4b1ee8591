//! flexc's passes: the `Pass` trait, the pass manager, pipeline text and every transform.
