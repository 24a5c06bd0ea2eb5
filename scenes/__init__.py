"""The scene world as a library: coloured shapes on a 3×3 grid, and everything that knows their rules.

    world      Scene, SceneObject, sample_scene: what a scene is and how one is drawn at random
    render     a Scene → pixels (PIL), supersampled
    captions   a Scene → English (captions, object phrases, positions, articles)
    parser     pixels → the Scene they show (the drawing evaluations' referee)
    reading    a reply → the colour, shape, count, place or yes/no it states
    questions  a Scene → questions with exact answers, by kind (colour, shape, count, position, existence)
    prompts    drawing requests and the specs they fix (the scene-GenEval categories)
    declines   requests the world cannot draw, with the reply that says what it can

It imports nothing else of Glyph's: data writers (data_gen), training, evaluation and the surfaces import it.
"""
