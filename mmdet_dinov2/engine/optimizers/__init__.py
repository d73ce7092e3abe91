from .layer_decay import LayerDecayOptimizerConstructor, get_layer_id

__all__ = ['LayerDecayOptimizerConstructor', 'get_layer_id']
