"""traiNNer-redux host support: registers the SFD parts in traiNNer's registries when traiNNer is imported."""
