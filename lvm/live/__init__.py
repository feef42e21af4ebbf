"""Live training for any front end: one run of Alg. 1 in a background thread (`session`), what it shows a
front end (`frames`), the turns the runs of a process take on its cores (`turns`), and live runs kept on disk
(`store`)."""
