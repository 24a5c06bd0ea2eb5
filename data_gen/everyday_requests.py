"""Everyday requests that need no picture: facts, how-tos, small writing tasks, sums, advice.

    requests = everyday_requests(np.random.default_rng(0), 1500)   # distinct, in a fixed order for a seed

What people ask any chat assistant. The scene assistant should answer them as its LLM does on its own
(data_gen.text_replies writes the LLM's replies to them as training chats). Each request is a template with
its blanks filled; none names the assistant itself (chitchat in data_gen.scene_chats answers "Who are you?"),
and none is about a picture. The evaluation asks other, hand-written questions (training.eval_assistant).
"""
from __future__ import annotations

import numpy as np

COUNTRIES = ("France", "Japan", "Brazil", "Canada", "Egypt", "Kenya", "India", "Italy", "Mexico", "Norway",
             "Spain", "Germany", "Australia", "Argentina", "Thailand", "Greece", "Turkey", "Peru", "Chile", "Poland")
ANIMALS = ("a cat", "a dog", "an octopus", "a bee", "a horse", "an owl", "a dolphin", "a penguin", "an ant",
           "a frog", "a snail", "a shark", "a bat", "a camel", "a crab", "an eagle")
TOPICS = ("the ocean", "autumn leaves", "a rainy day", "friendship", "the moon", "a cup of tea", "winter",
          "a quiet forest", "the city at night", "a long journey", "spring flowers", "a mountain lake",
          "an old library", "the first snow", "a summer storm", "a lighthouse")
SKILLS = ("learning a new language", "saving money", "cooking rice", "staying focused", "running a first 5k",
          "keeping a plant alive", "writing a cover letter", "getting up early", "learning to play guitar",
          "staying hydrated", "making new friends", "studying for an exam", "reducing stress", "packing light")
CONCEPTS = ("photosynthesis", "gravity", "inflation", "democracy", "a black hole", "the water cycle",
            "machine learning", "an atom", "evolution", "a volcano", "electricity", "the internet", "a vaccine",
            "climate change", "a rainbow", "DNA", "a computer virus", "the stock market", "an earthquake", "tides")
THINGS = ("coffee", "tea", "bicycles", "books", "trains", "chess", "the piano", "pizza", "bread", "cheese",
          "paper", "glass", "soap", "chocolate", "umbrellas", "clocks")
FOODS = ("pancakes", "a tomato soup", "a fruit salad", "guacamole", "scrambled eggs", "a simple pasta",
         "lemonade", "a vegetable stir-fry", "banana bread", "a green salad")
PHRASES = ("good morning", "thank you", "where is the station", "I love you", "see you tomorrow", "how are you",
           "happy birthday", "good night", "excuse me", "what time is it")
LANGUAGES = ("French", "Spanish", "German", "Italian", "Portuguese")
AUTHORS = ("Romeo and Juliet", "Pride and Prejudice", "Don Quixote", "War and Peace", "Hamlet", "The Odyssey",
           "Moby-Dick", "Frankenstein", "Oliver Twist", "The Little Prince")
PAIRS = (("cats", "dogs"), ("tea", "coffee"), ("summer", "winter"), ("books", "films"), ("trains", "planes"),
         ("the sea", "the mountains"), ("running", "swimming"), ("a city", "the countryside"))
LISTS = ("fruits", "vegetables", "planets", "musical instruments", "European capitals", "mammals", "sports",
         "programming languages", "board games", "kinds of clouds", "birds", "rivers", "breakfast ideas",
         "hobbies you can do at home", "things to pack for a picnic")

GENRES = ("science fiction", "mystery", "fantasy", "history", "comedy", "adventure", "romance", "poetry",
          "biography", "horror")
OCCASIONS = ("a birthday", "a wedding", "a retirement", "a new job", "a graduation", "a new baby", "a farewell")
WORDS = ("cat", "tree", "rain", "blue", "night", "stone", "dream", "sing", "moon", "day", "bread", "fun")
PLACES = ("a park", "a museum", "a beach", "a small town", "a train station", "a bakery", "a library",
          "a market", "a garden", "a desert")
CHARACTERS = ("a brave mouse", "a lost robot", "a sleepy dragon", "a young wizard", "a clever fox",
              "an old fisherman", "a shy giraffe", "a talking tree")

# (template, {blank: fillers}); every template is used, so the requests vary in kind as well as in detail.
TEMPLATES = (
    ("What is the capital of {country}?", {"country": COUNTRIES}),
    ("Which language do people speak in {country}?", {"country": COUNTRIES}),
    ("Tell me one interesting fact about {country}.", {"country": COUNTRIES}),
    ("How many legs does {animal} have?", {"animal": ANIMALS}),
    ("What does {animal} eat?", {"animal": ANIMALS}),
    ("Where does {animal} live?", {"animal": ANIMALS}),
    ("Write a haiku about {topic}.", {"topic": TOPICS}),
    ("Write a short poem about {topic}.", {"topic": TOPICS}),
    ("Write two sentences about {topic}.", {"topic": TOPICS}),
    ("Give me three tips for {skill}.", {"skill": SKILLS}),
    ("How do I get better at {skill}?", {"skill": SKILLS}),
    ("What is a good first step for {skill}?", {"skill": SKILLS}),
    ("Explain {concept} in simple words.", {"concept": CONCEPTS}),
    ("What is {concept}?", {"concept": CONCEPTS}),
    ("Explain {concept} to a ten-year-old.", {"concept": CONCEPTS}),
    ("Tell me a short history of {thing}.", {"thing": THINGS}),
    ("Why do people like {thing}?", {"thing": THINGS}),
    ("How do I make {food}?", {"food": FOODS}),
    ("What do I need to make {food}?", {"food": FOODS}),
    ("How do you say '{phrase}' in {language}?", {"phrase": PHRASES, "language": LANGUAGES}),
    ("Translate '{phrase}' into {language}.", {"phrase": PHRASES, "language": LANGUAGES}),
    ("Who wrote {book}?", {"book": AUTHORS}),
    ("What is {book} about?", {"book": AUTHORS}),
    ("Which is better, {pair}?", {"pair": tuple(f"{a} or {b}" for a, b in PAIRS)}),
    ("Compare {pair} in a few sentences.", {"pair": tuple(f"{a} and {b}" for a, b in PAIRS)}),
    ("Name five {things}.", {"things": LISTS}),
    ("List three {things}.", {"things": LISTS}),
    ("What is {a} plus {b}?", {"a": tuple(map(str, range(2, 60, 3))), "b": tuple(map(str, range(3, 40, 4)))}),
    ("What is {a} times {b}?", {"a": tuple(map(str, range(2, 13))), "b": tuple(map(str, range(3, 15)))}),
    ("What is {a} minus {b}?", {"a": tuple(map(str, range(50, 100, 7))), "b": tuple(map(str, range(4, 40, 5)))}),
    ("Is {n} an even number?", {"n": tuple(map(str, range(1, 40, 3)))}),
    ("Write a Python function that {task}.", {"task": ("adds two numbers", "reverses a string",
                                                       "checks if a number is prime", "returns the largest item "
                                                       "of a list", "counts the vowels in a word",
                                                       "prints the numbers from 1 to 10")}),
    ("What does the word '{word}' mean?", {"word": ("serendipity", "ephemeral", "resilient", "curious",
                                                    "nostalgia", "generous", "ambiguous", "meticulous")}),
    ("Give me a synonym for '{word}'.", {"word": ("happy", "big", "fast", "smart", "tired", "beautiful",
                                                  "angry", "cold")}),
    ("Write a short email to {who} about {what}.", {"who": ("my boss", "a friend", "my teacher", "a neighbour"),
                                                    "what": ("being late tomorrow", "a birthday party",
                                                             "borrowing a book", "a meeting next week")}),
    ("Suggest a name for {pet}.", {"pet": ("a kitten", "a puppy", "a goldfish", "a parrot", "a hamster")}),
    ("Tell me a joke about {thing}.", {"thing": THINGS}),
    ("What should I do on {day}?", {"day": ("a rainy Sunday", "a sunny Saturday", "a day off", "a snowy day",
                                           "a long weekend")}),
    ("How long does it take to {task}?", {"task": ("boil an egg", "learn to swim", "read a novel",
                                                   "walk five kilometres", "grow tomatoes", "bake bread")}),
    ("Why is {fact}?", {"fact": ("the sky blue", "the sea salty", "ice slippery", "the grass green",
                                 "the sun hot", "the night dark")}),
    ("Summarise the idea of {concept} in one sentence.", {"concept": CONCEPTS}),
    ("Give me a fun fact about {animal}.", {"animal": ANIMALS}),
    ("Recommend a {genre} book.", {"genre": GENRES}),
    ("Can you suggest a good {genre} film?", {"genre": GENRES}),
    ("What makes a good {genre} story?", {"genre": GENRES}),
    ("Write a birthday message for {who}.", {"who": ("my sister", "a colleague", "my grandfather", "a friend",
                                                     "my teacher")}),
    ("What is a nice gift for {occasion}?", {"occasion": OCCASIONS}),
    ("Write a short speech for {occasion}.", {"occasion": OCCASIONS}),
    ("Give me three words that rhyme with '{word}'.", {"word": WORDS}),
    ("Use the word '{word}' in a sentence.", {"word": WORDS}),
    ("How many letters are in the word '{word}'?", {"word": WORDS}),
    ("Write a short story about {character}.", {"character": CHARACTERS}),
    ("Tell me a bedtime story about {character}.", {"character": CHARACTERS}),
    ("Describe {place} in three sentences.", {"place": PLACES}),
    ("What can I do at {place}?", {"place": PLACES}),
    ("Plan a one-day trip to {country}.", {"country": COUNTRIES}),
    ("What food is {country} famous for?", {"country": COUNTRIES}),
    ("Should I learn {language} or {other}?", {"language": LANGUAGES, "other": ("Japanese", "Chinese", "Arabic",
                                                                                 "Russian", "Korean")}),
    ("What are the pros and cons of {thing}?", {"thing": THINGS}),
    ("Give me a healthy recipe with {food}.", {"food": ("lentils", "spinach", "oats", "chickpeas", "salmon",
                                                        "sweet potatoes", "yoghurt", "apples")}),
    ("How can I be more {trait}?", {"trait": ("patient", "productive", "confident", "organised", "creative",
                                              "calm", "kind")}),
    ("What is the difference between {pair}?", {"pair": ("a virus and a bacterium", "a lake and a sea",
                                                         "speed and velocity", "a fruit and a vegetable",
                                                         "a planet and a star", "an ape and a monkey")}),
)


def everyday_request(rng: np.random.Generator) -> str:
    """One request: a template drawn at random, its blanks filled at random."""
    template, blanks = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    return template.format(**{name: options[int(rng.integers(len(options)))] for name, options in blanks.items()})


def everyday_requests(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct requests (fewer if the templates cannot make that many), in the order drawn."""
    found: dict[str, None] = {}
    for _ in range(n * 20):
        found[everyday_request(rng)] = None
        if len(found) == n:
            break
    return list(found)
