//! MRT placeholder.
