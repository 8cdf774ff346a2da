//! The canonical layout of journey scripts (`waymark fmt`).
