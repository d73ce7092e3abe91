from .layer_decay import LayerDecayOptimizerConstructor, get_layer_id, has_weight_decay

__all__ = ['LayerDecayOptimizerConstructor', 'get_layer_id', 'has_weight_decay']
