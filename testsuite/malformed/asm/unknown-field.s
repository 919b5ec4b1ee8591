sync bogus=1
