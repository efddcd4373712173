/* A shared object that is not a virtfleet module: it exports no descriptor. */
int no_descriptor_answer(void);
int no_descriptor_answer(void)
{
    return 42;
}
