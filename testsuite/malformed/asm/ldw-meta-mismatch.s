ldw sm=0 row=0 col=0 rows=1 cols=2 w=0x0102 meta=0x0000
