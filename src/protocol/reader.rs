//! A cursor over a borrowed slice: every bounds check of the codec lives here.
