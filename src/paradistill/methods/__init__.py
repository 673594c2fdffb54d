"""Method drivers: the functions that run a whole training of each method (base models, Gumbel Distillation,
SDTT rounds, ADJUST), between the training loop (`train/`) and the user entry points (`api`, the CLI). Each
driver builds data, teacher, objective and model from a typed recipe and hands them to `train.loop.train`;
`api` re-exports them, so Python users call the same functions as the command line."""
