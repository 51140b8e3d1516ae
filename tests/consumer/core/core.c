/* The core API: an image, a slot, an instance of the image in the slot, a
 * reset, and the guard past the memory. Uses only the installed header. */
#include <cowmem.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  size_t ps = cowmem_page_size();
  static const char msg[] = "hello from an image";
  cowmem_image_t* img = NULL;
  cowmem_slot_t* slot = NULL;
  /* The image: msg at offset ps of linear memory, zeros elsewhere. */
  int r = cowmem_image_new_from_bytes(msg, sizeof msg, ps, &img);
  if (r == 0) r = cowmem_slot_new(16 * ps, &slot);
  if (r == 0) r = cowmem_slot_instantiate(slot, 4 * ps, img);
  if (r != 0) {
    fprintf(stderr, "core: %s: %s\n", cowmem_err_name(r), cowmem_strerror(r));
    cowmem_slot_free(slot);
    cowmem_image_release(img);
    return 1;
  }
  char* mem = cowmem_slot_base(slot);
  int ok = strcmp(mem + ps, msg) == 0 && mem[0] == 0;
  /* An instance's writes are its own: the reset restores image and zeros. */
  mem[0] = 'x';
  memcpy(mem + ps, "HELLO", 5);
  r = cowmem_slot_reset(slot);
  if (r == 0) r = cowmem_slot_instantiate(slot, 4 * ps, img);
  ok = ok && r == 0 && mem[0] == 0 && strcmp(mem + ps, msg) == 0;
  ok = ok && cowmem_slot_accessible(slot) == 4 * ps;
  printf("core: %s\n", ok ? "ok" : "WRONG CONTENTS");
  cowmem_slot_free(slot);
  cowmem_image_release(img);
  return ok ? 0 : 1;
}
