//! Runnable examples: see examples/.
