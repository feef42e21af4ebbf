"""Live training for any front end: one run of Alg. 1 in a background thread (`session`), what it shows a
front end (`frames`), where it trains and the levels its q(z^K) is judged against (`levels`), the turns the runs of a process take on its cores (`turns`), and live runs kept on disk
(`store`)."""
