# The images module (images.so): ClusterVirtualImage, the image store and the
# upload listener.  Links the format parsers (libvfimage) and the network
# fetchers (libvffetch), both convenience libraries built with -fPIC.
if BUILD_MODULE_IMAGES
module_LTLIBRARIES += modules/images/images.la
modules_images_images_la_SOURCES = \
	modules/images/module.c \
	modules/images/cvi.c modules/images/cvi_disk.c modules/images/cvi.h \
	modules/images/cvi_kind.c modules/images/cvi_import.c modules/images/cvi_internal.h \
	modules/images/cdrom.c modules/images/cdrom.h \
	modules/images/image_store.c modules/images/image_store.h \
	modules/images/upload.c modules/images/upload.h \
	modules/images/vd.c modules/images/vd_steps.c modules/images/vd_job.c \
	modules/images/vd_internal.h modules/images/vd_kind.c modules/images/vd.h \
	modules/images/vd_volume.c modules/images/vd_volume.h modules/images/vd_retry.c \
	modules/images/ctl_util.c modules/images/ctl_util.h \
	modules/images/vm_refs.c modules/images/vm_refs.h
modules_images_images_la_CFLAGS = $(MODULE_CFLAGS) $(MHD_CFLAGS) $(CRYPTO_CFLAGS) $(LIBVIRT_CFLAGS)
modules_images_images_la_LDFLAGS = $(MODULE_LINKFLAGS)
modules_images_images_la_LIBADD = modules/images/libvfimage.la modules/images/libvffetch.la \
	$(MHD_LIBS) $(CRYPTO_LIBS) $(LIBVIRT_LIBS) $(JSONC_LIBS)
endif
