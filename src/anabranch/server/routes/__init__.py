"""One router per noun; each route validates its input and calls the store, nothing more."""
